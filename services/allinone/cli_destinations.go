package allinone

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3dest/s3dest/pkg/layout"
)

func destinationsCommand(a *app) *cobra.Command {
	cmd := group("destinations", "list, create, update, delete and validate destinations; extend their retention",
		a.destinationsList(), a.destinationsGet(), a.destinationsCreate(), a.destinationsUpdate(),
		a.deleteCommand("destination", "/destinations/", "its files already delivered stay in the bucket"),
		a.validateCmd(), a.destinationsExtendRetention())
	cmd.GroupID = groupManage
	return a.addClientFlags(cmd)
}

// destinationAnswer is the API's data for one destination.
type destinationAnswer struct {
	Destination apiDestination `json:"destination"`
	Validation  *apiValidation `json:"validation"`
}

// destinationCall makes one call whose answer is a destination, and prints it.
func (a *app) destinationCall(cmd *cobra.Command, method, path string, body any) error {
	api, err := a.client(cmd)
	if err != nil {
		return err
	}
	var got destinationAnswer
	raw, err := api.call(cmd.Context(), method, path, body, &got)
	if err != nil {
		return err
	}
	if a.json {
		return printJSON(a.out, raw)
	}
	return printDestination(a.out, got.Destination, got.Validation)
}

func (a *app) destinationsList() *cobra.Command {
	var source, slug string
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "every destination, or a source's (--json: {\"destinations\": [...]})",
		Args:  positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := a.client(cmd)
			if err != nil {
				return err
			}
			q := url.Values{}
			if source != "" {
				q.Set("sourceId", source)
			}
			if slug != "" {
				q.Set("slug", slug)
			}
			all, raws, err := api.listDestinationsRaw(cmd.Context(), q)
			if err != nil {
				return err
			}
			if a.json {
				return printValue(a.out, map[string]any{"destinations": orEmpty(raws)})
			}
			rows := make([][]string, 0, len(all))
			for _, d := range all {
				rows = append(rows, []string{d.ID, d.Name, d.Metadata.Slug, d.SourceID, yesNo(d.Enabled), d.Settings.Region, d.Settings.S3Bucket, orDash(d.Settings.IamRoleArn)})
			}
			return table(a.out, []string{"ID", "NAME", "KIND", "SOURCE", "ENABLED", "REGION", "BUCKET", "ROLE"}, rows)
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "only this source's destinations")
	cmd.Flags().StringVar(&slug, "slug", "", "only this kind: aws-s3 or amazon-s3")
	return cmd
}

func (a *app) destinationsGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get <destinationId>",
		Short: "a destination's settings and its latest validation",
		Args:  positional("<destinationId>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.destinationCall(cmd, http.MethodGet, "/destinations/"+url.PathEscape(args[0]), nil)
		},
	}
}

func (a *app) destinationsCreate() *cobra.Command {
	var source, name, region, bucket, role, format string
	var enabled, legacy, backfill bool
	cmd := &cobra.Command{
		Use:   "create --source ID --region R --bucket B[/prefix] --role-arn ARN [flags]",
		Short: "a new AWS S3 destination of a source, validated at once",
		Long: `Creates an AWS S3 destination of a source and validates it at once (s3dest destinations get shows
the result). --legacy creates an Amazon S3 destination instead, which has no role. By default it
receives the events from now on, as Segment's does; --backfill also delivers the source's files already
staged, for the received days still in retention (docs/replay.md).`,
		Example: "  s3dest destinations create --source <sourceId> --region us-east-1 --bucket acme-logs/events \\\n    --role-arn arn:aws:iam::222222222222:role/s3dest",
		Args:    positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			md := layout.AWSS3MetadataID
			if legacy {
				md = layout.AmazonS3MetadataID
			}
			return a.destinationCall(cmd, http.MethodPost, "/destinations", map[string]any{"sourceId": source, "metadataId": md, "name": name, "enabled": enabled,
				"settings": apiSettings{Region: region, S3Bucket: bucket, IamRoleArn: role, Format: format, Backfill: backfill}})
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "the source whose events the destination receives")
	f.StringVar(&name, "name", "", "the destination's name")
	f.StringVar(&region, "region", "", "the bucket's AWS region")
	f.StringVar(&bucket, "bucket", "", "the bucket's name, optionally followed by /path/prefix")
	f.StringVar(&role, "role-arn", "", "the IAM role s3dest assumes: arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME")
	f.BoolVar(&enabled, "enabled", true, "whether the destination receives events")
	f.BoolVar(&legacy, "legacy", false, "create an Amazon S3 (legacy) destination instead of AWS S3")
	f.StringVar(&format, "format", "", "the files' format: json (gzipped NDJSON, the default) or parquet (docs/querying.md)")
	f.BoolVar(&backfill, "backfill", false, "also deliver the source's files already staged, for the days still in retention (by default: from now on)")
	return cmd
}

func (a *app) destinationsUpdate() *cobra.Command {
	var name, region, bucket, role, format string
	var enabled bool
	cmd := &cobra.Command{
		Use:     "update <destinationId> [flags]",
		Short:   "change a destination's settings, name, or whether it receives events",
		Example: "  s3dest destinations update <destinationId> --bucket acme-logs-2",
		Args:    positional("<destinationId>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := changedFlags(cmd, map[string]any{"name": name, "enabled": enabled})
			if set := (apiSettings{Region: region, S3Bucket: bucket, IamRoleArn: role, Format: format}); set != (apiSettings{}) {
				body["settings"] = set
			}
			if len(body) == 0 {
				return usageErrorf("%s: give at least one of --name, --enabled, --region, --bucket, --role-arn, --format", cmd.CommandPath())
			}
			return a.destinationCall(cmd, http.MethodPatch, "/destinations/"+url.PathEscape(args[0]), body)
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "new name")
	f.StringVar(&region, "region", "", "new region")
	f.StringVar(&bucket, "bucket", "", "new bucket[/prefix]")
	f.StringVar(&role, "role-arn", "", "new IAM role ARN")
	f.StringVar(&format, "format", "", "new file format: json or parquet (files already delivered stay as they are)")
	f.BoolVar(&enabled, "enabled", true, "enable or disable (--enabled=false) the destination")
	return cmd
}

func (a *app) destinationsExtendRetention() *cobra.Command {
	var by time.Duration
	var end bool
	cmd := &cobra.Command{
		Use:   "extend-retention <destinationId> (--by DURATION | --end) [flags]",
		Short: "keep a failing destination's waiting files longer than the retention",
		Long: `Keeps the destination's waiting files until now + DURATION (e.g. 72h, at most 2160h) instead of
dead-lettering them when the retention ends; --end ends the extension. s3dest status shows both
(docs/retention.md).`,
		Args: positional("<destinationId>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (by > 0) == end {
				return usageErrorf("%s: give --by DURATION (more than 0s) or --end\nusage: %s", cmd.CommandPath(), cmd.UseLine())
			}
			body := map[string]any{"end": end}
			if by > 0 {
				body["extendBy"] = fmt.Sprintf("%.0fs", by.Seconds())
			}
			return a.destinationCall(cmd, http.MethodPost, "/destinations/"+url.PathEscape(args[0])+"/retention:extend", body)
		},
	}
	cmd.Flags().DurationVar(&by, "by", 0, "keep the destination's waiting files until now plus this long (e.g. 72h)")
	cmd.Flags().BoolVar(&end, "end", false, "end the destination's extension now")
	return cmd
}

func printDestination(out io.Writer, d apiDestination, v *apiValidation) error {
	rows := [][]string{
		{"ID", d.ID}, {"NAME", d.Name}, {"KIND", d.Metadata.Slug + " (" + d.Metadata.ID + ")"}, {"SOURCE", d.SourceID},
		{"ENABLED", yesNo(d.Enabled)}, {"REGION", d.Settings.Region}, {"BUCKET", d.Settings.S3Bucket}, {"ROLE", orDash(d.Settings.IamRoleArn)},
		{"FORMAT", orDash(d.Settings.Format)}, {"VALIDATION", validationSummary(v)}, {"RETENTION EXTENDED UNTIL", orDash(d.RetentionExtendedUntil)},
	}
	return table(out, []string{"FIELD", "VALUE"}, rows)
}

// validationSummary is one line: the code and message, or why there is none.
func validationSummary(v *apiValidation) string {
	if v == nil {
		return "not validated yet"
	}
	s := v.Code + ": " + v.Message
	if v.CheckedAt != "" {
		s += " (" + v.CheckedAt + ")"
	}
	return s
}
