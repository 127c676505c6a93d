package allinone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/s3dest/s3dest/pkg/layout"
)

const destinationsUsage = `usage: s3dest destinations <command> [flags]

commands:
  list [--source ID] [--slug aws-s3|amazon-s3]
  get <destinationId>                 settings and the latest validation
  create --source ID --region R --bucket B[/prefix] --role-arn ARN [--name N] [--enabled=false] [--legacy]
                                      (validated at once; --legacy creates an Amazon S3 destination, no role)
  update <destinationId> [--region R] [--bucket B] [--role-arn ARN] [--name N] [--enabled=true|false]
  delete <destinationId>
  validate <destinationId>            run the reference's Validate steps (same as s3dest validate)
  extend-retention <destinationId> --by DURATION | --end
                                      keep its waiting files until now + DURATION (e.g. 72h, at most
                                      2160h) instead of dead-lettering them when the retention ends;
                                      --end ends the extension (s3dest status shows both)

Every command takes --admin-url, --admin-token and --json.
`

// Destinations runs `s3dest destinations …`.
func Destinations(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(destinationsUsage)
	}
	if args[0] == "validate" {
		return validateCommand(ctx, args[1:], out)
	}
	c, err := newCommand("destinations " + args[0])
	if err != nil {
		return err
	}
	var raw json.RawMessage
	var got struct {
		Destination apiDestination `json:"destination"`
		Validation  *apiValidation `json:"validation"`
	}
	switch args[0] {
	case "list":
		source := c.fs.String("source", "", "only this source's destinations")
		slug := c.fs.String("slug", "", "only this kind: aws-s3 or amazon-s3")
		api, err := c.parse(args[1:], 0, "s3dest destinations list [--source ID] [--slug aws-s3|amazon-s3]")
		if err != nil {
			return err
		}
		q := url.Values{}
		if *source != "" {
			q.Set("sourceId", *source)
		}
		if *slug != "" {
			q.Set("slug", *slug)
		}
		all, raws, err := api.listDestinationsRaw(ctx, q)
		if err != nil {
			return err
		}
		if *c.json {
			b, _ := json.Marshal(map[string]any{"destinations": raws})
			return printJSON(out, b)
		}
		rows := make([][]string, 0, len(all))
		for _, d := range all {
			rows = append(rows, []string{d.ID, d.Name, d.Metadata.Slug, d.SourceID, yesNo(d.Enabled), d.Settings.Region, d.Settings.S3Bucket, orDash(d.Settings.IamRoleArn)})
		}
		return table(out, []string{"ID", "NAME", "KIND", "SOURCE", "ENABLED", "REGION", "BUCKET", "ROLE"}, rows)
	case "get":
		api, err := c.parse(args[1:], 1, "s3dest destinations get <destinationId>")
		if err != nil {
			return err
		}
		if raw, err = api.call(ctx, http.MethodGet, "/destinations/"+url.PathEscape(c.arg(0)), nil, &got); err != nil {
			return err
		}
	case "create":
		source := c.fs.String("source", "", "the source whose events the destination receives")
		name := c.fs.String("name", "", "the destination's name")
		region := c.fs.String("region", "", "the bucket's AWS region")
		bucket := c.fs.String("bucket", "", "the bucket's name, optionally followed by /path/prefix")
		role := c.fs.String("role-arn", "", "the IAM role s3dest assumes: arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME")
		enabled := c.fs.Bool("enabled", true, "whether the destination receives events")
		legacy := c.fs.Bool("legacy", false, "create an Amazon S3 (legacy) destination instead of AWS S3")
		api, err := c.parse(args[1:], 0, "s3dest destinations create --source ID --region R --bucket B --role-arn ARN [--name N] [--enabled=false] [--legacy]")
		if err != nil {
			return err
		}
		md := layout.AWSS3MetadataID
		if *legacy {
			md = layout.AmazonS3MetadataID
		}
		body := map[string]any{"sourceId": *source, "metadataId": md, "name": *name, "enabled": *enabled,
			"settings": apiSettings{Region: *region, S3Bucket: *bucket, IamRoleArn: *role}}
		if raw, err = api.call(ctx, http.MethodPost, "/destinations", body, &got); err != nil {
			return err
		}
	case "update":
		name := c.fs.String("name", "", "new name")
		region := c.fs.String("region", "", "new region")
		bucket := c.fs.String("bucket", "", "new bucket[/prefix]")
		role := c.fs.String("role-arn", "", "new IAM role ARN")
		enabled := c.fs.Bool("enabled", true, "enable or disable (--enabled=false) the destination")
		api, err := c.parse(args[1:], 1, "s3dest destinations update <destinationId> [--region R] [--bucket B] [--role-arn ARN] [--name N] [--enabled=true|false]")
		if err != nil {
			return err
		}
		body := map[string]any{}
		if c.set("name") {
			body["name"] = *name
		}
		if c.set("enabled") {
			body["enabled"] = *enabled
		}
		if set := (apiSettings{Region: *region, S3Bucket: *bucket, IamRoleArn: *role}); set != (apiSettings{}) {
			body["settings"] = set
		}
		if len(body) == 0 {
			return errors.New("update: give at least one of --name, --enabled, --region, --bucket, --role-arn")
		}
		if raw, err = api.call(ctx, http.MethodPatch, "/destinations/"+url.PathEscape(c.arg(0)), body, &got); err != nil {
			return err
		}
	case "delete":
		return c.deleteOne(ctx, args[1:], "destination", "/destinations/", out)
	case "extend-retention":
		by := c.fs.Duration("by", 0, "keep the destination's waiting files until now plus this long (e.g. 72h)")
		end := c.fs.Bool("end", false, "end the destination's extension now")
		usage := "s3dest destinations extend-retention <destinationId> --by DURATION | --end"
		api, err := c.parse(args[1:], 1, usage)
		if err != nil {
			return err
		}
		if (*by > 0) == *end {
			return fmt.Errorf("extend-retention: give --by DURATION (more than 0s) or --end\nusage: %s", usage)
		}
		body := map[string]any{"end": *end}
		if *by > 0 {
			body["extendBy"] = fmt.Sprintf("%.0fs", by.Seconds())
		}
		if raw, err = api.call(ctx, http.MethodPost, "/destinations/"+url.PathEscape(c.arg(0))+"/retention:extend", body, &got); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], destinationsUsage)
	}
	if *c.json {
		return printJSON(out, raw)
	}
	return printDestination(out, got.Destination, got.Validation)
}

func printDestination(out io.Writer, d apiDestination, v *apiValidation) error {
	rows := [][]string{
		{"ID", d.ID}, {"NAME", d.Name}, {"KIND", d.Metadata.Slug + " (" + d.Metadata.ID + ")"}, {"SOURCE", d.SourceID},
		{"ENABLED", yesNo(d.Enabled)}, {"REGION", d.Settings.Region}, {"BUCKET", d.Settings.S3Bucket}, {"ROLE", orDash(d.Settings.IamRoleArn)},
		{"VALIDATION", validationSummary(v)}, {"RETENTION EXTENDED UNTIL", orDash(d.RetentionExtendedUntil)},
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
