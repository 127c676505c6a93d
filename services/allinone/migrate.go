package allinone

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3dest/s3dest/pkg/layout"
)

// MigrateConfig is `s3dest migrate`: the reference's "Migrate an existing destination using the Public
// API", automated.
type MigrateConfig struct {
	ClientConfig
	SourceID string
	// Bucket and Region default to the legacy Amazon S3 destination's settings.
	Bucket, Region, RoleARN, Name string
	// Yes skips the question before the switch.
	Yes bool
	// Wait bounds each wait for data to arrive; Poll is how often the status is read meanwhile.
	Wait, Poll time.Duration
	// JSON prints one JSON object at the end (also after a failure) instead of the steps as they run;
	// the question before the switch then goes to Question.
	JSON     bool
	Question io.Writer
}

func migrateCommand(a *app) *cobra.Command {
	cfg := MigrateConfig{}
	cmd := &cobra.Command{
		Use:   "migrate --source ID --role-arn ARN [flags]",
		Short: "move a source from Amazon S3 to AWS S3, step by step (the reference's migration)",
		Long: `Moves a source from the legacy Amazon S3 destination to an AWS S3 destination the way the reference's
"Migrate existing destinations" does: create the AWS S3 destination writing to a test folder, validate
it, wait for data, ask, switch its bucket, disable the Amazon S3 destination, wait for data again.
A rerun resumes where it stopped. Exits 3 when the validation fails or no data arrives in time.
--json prints one object at the end: {"sourceId", "destinationId", "steps": [{"step", "text",
"details"}], "done", "error"}; the question then goes to standard error (or give --yes).`,
		Args:    positional(),
		GroupID: groupManage,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := a.clientConfig(cmd)
			if err != nil {
				return err
			}
			cfg.ClientConfig, cfg.JSON, cfg.Question = conn, a.json, a.errOut
			return Migrate(cmd.Context(), cfg, a.in, a.out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.SourceID, "source", "", "the source whose Amazon S3 destination moves to AWS S3 (required)")
	f.StringVar(&cfg.RoleARN, "role-arn", "", "the IAM role you created for s3dest (required)")
	f.StringVar(&cfg.Bucket, "bucket", "", "the bucket[/prefix] (default: the Amazon S3 destination's)")
	f.StringVar(&cfg.Region, "region", "", "the bucket's region (default: the Amazon S3 destination's)")
	f.StringVar(&cfg.Name, "name", "AWS S3", "the new destination's name")
	f.BoolVar(&cfg.Yes, "yes", false, "do not ask before switching the bucket and disabling the old destination")
	f.DurationVar(&cfg.Wait, "wait", 2*time.Hour, "how long to wait for data at each check (the reference: about an hour)")
	f.DurationVar(&cfg.Poll, "poll", 10*time.Second, "how often to look for data meanwhile")
	return a.addClientFlags(cmd)
}

// migrationLog is what migrate tells: printed as it goes, or kept for one JSON object at the end.
type migrationLog struct {
	text     io.Writer       // nil with --json
	SourceID string          `json:"sourceId"`
	DestID   string          `json:"destinationId"`
	Steps    []migrationStep `json:"steps"`
	Done     bool            `json:"done"`
	Error    string          `json:"error,omitempty"`
}

// migrationStep is one step, with the lines it printed under it.
type migrationStep struct {
	Step    int      `json:"step"`
	Text    string   `json:"text"`
	Details []string `json:"details,omitempty"`
}

// step starts the next step.
func (l *migrationLog) step(format string, args ...any) {
	l.Steps = append(l.Steps, migrationStep{Step: len(l.Steps) + 1, Text: fmt.Sprintf(format, args...)})
	if l.text != nil {
		fmt.Fprintf(l.text, "Step %d. %s\n", len(l.Steps), l.Steps[len(l.Steps)-1].Text)
	}
}

// detail adds a line to the current step.
func (l *migrationLog) detail(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if n := len(l.Steps); n > 0 {
		l.Steps[n-1].Details = append(l.Steps[n-1].Details, line)
	}
	if l.text != nil {
		fmt.Fprintln(l.text, "  "+line)
	}
}

// Migrate moves a source from the legacy Amazon S3 destination to an AWS S3 destination, the way the
// reference's "Migrate existing destinations" does it, printing each step:
//
//  1. find the source's Amazon S3 destinations (GET /destinations?sourceId=…&slug=amazon-s3);
//  2. create the AWS S3 destination with bucket <bucket>/segment-logs/test (POST /destinations);
//  3. validate it (POST /destinations/{id}/validate);
//  4. wait until data arrives at <bucket>/segment-logs/test/segment-logs (GET …/status);
//  5. ask, then switch the bucket to <bucket> (PATCH settings.s3Bucket);
//  6. disable the Amazon S3 destinations (PATCH {"enabled": false});
//  7. wait until <bucket>/segment-logs receives data from the new destination;
//  8. tell what to remove by hand: the test folder.
//
// Both destinations name a file the same way and write with If-None-Match, so the moment where both
// write to <bucket>/segment-logs overwrites nothing. A rerun resumes: it reuses the AWS S3 destination
// it created.
func Migrate(ctx context.Context, cfg MigrateConfig, in io.Reader, out io.Writer) (err error) {
	switch {
	case cfg.SourceID == "":
		return usageErrorf("source: the source to migrate is required (--source)")
	case cfg.Poll <= 0 || cfg.Wait <= 0:
		return usageErrorf("wait and poll: must be positive")
	}
	api, err := newAPIClient(cfg.ClientConfig)
	if err != nil {
		return err
	}
	log := &migrationLog{SourceID: cfg.SourceID}
	if !cfg.JSON {
		log.text = out
	} else {
		defer func() {
			if err != nil {
				log.Error = err.Error()
			}
			if perr := printValue(out, log); err == nil {
				err = perr
			}
		}()
	}
	say, detail := log.step, log.detail

	say("Find the Amazon S3 destinations of source %s.", cfg.SourceID)
	legacy, err := api.listDestinations(ctx, url.Values{"sourceId": {cfg.SourceID}, "slug": {layout.AmazonS3Slug}})
	if err != nil {
		return err
	}
	for _, d := range legacy {
		detail("%s %q: bucket %s in %s, enabled: %s", d.ID, d.Name, d.Settings.S3Bucket, d.Settings.Region, yesNo(d.Enabled))
	}
	if len(legacy) == 0 {
		detail("none: nothing to disable at the end")
	}
	if cfg.Bucket == "" || cfg.Region == "" {
		if len(legacy) == 0 {
			return usageErrorf("bucket and region: the source has no Amazon S3 destination to take them from; give --bucket and --region")
		}
		if cfg.Bucket == "" {
			cfg.Bucket = legacy[0].Settings.S3Bucket
		}
		if cfg.Region == "" {
			cfg.Region = legacy[0].Settings.Region
		}
	}
	final := strings.TrimSuffix(cfg.Bucket, "/")
	test := final + "/" + layout.Root + "/test"

	existing, err := api.listDestinations(ctx, url.Values{"sourceId": {cfg.SourceID}, "slug": {layout.AWSS3Slug}})
	if err != nil {
		return err
	}
	var dest apiDestination
	switch {
	case len(existing) == 0:
		if cfg.RoleARN == "" {
			return usageErrorf("role-arn: the IAM role you created for s3dest is required (--role-arn); `s3dest workspace --bucket %s` shows the policies it needs", final)
		}
		say("Create the AWS S3 destination with bucket %s (data lands under %s/segment-logs/ first).", test, test)
		var got struct {
			Destination apiDestination `json:"destination"`
		}
		body := map[string]any{"sourceId": cfg.SourceID, "metadataId": layout.AWSS3MetadataID, "name": cfg.Name, "enabled": true,
			"settings": apiSettings{Region: cfg.Region, S3Bucket: test, IamRoleArn: cfg.RoleARN}}
		if _, err := api.call(ctx, http.MethodPost, "/destinations", body, &got); err != nil {
			return err
		}
		dest = got.Destination
		detail("created %s", dest.ID)
	case existing[0].Settings.S3Bucket == test:
		dest = existing[0]
		say("Reuse the AWS S3 destination %s, already writing to %s.", dest.ID, test)
	case existing[0].Settings.S3Bucket == final:
		dest = existing[0]
		say("The AWS S3 destination %s already writes to %s: the switch is done.", dest.ID, final)
		log.DestID = dest.ID
		return finishMigration(ctx, api, cfg, log, dest, legacy, time.Time{})
	default:
		return fmt.Errorf("source %s already has an AWS S3 destination %s writing to %s, neither %s nor %s; migrate will not change it",
			cfg.SourceID, existing[0].ID, existing[0].Settings.S3Bucket, test, final)
	}

	log.DestID = dest.ID
	say("Validate the new destination.")
	v, err := api.validate(ctx, dest.ID)
	if err != nil {
		return err
	}
	var steps strings.Builder
	printValidation(&steps, v)
	for _, line := range strings.Split(strings.TrimSuffix(steps.String(), "\n"), "\n") {
		detail("%s", line)
	}
	if !v.Ok {
		return withExit(ExitCheckFailed, fmt.Errorf("validation failed: %s; fix the role (`s3dest workspace --bucket %s` shows its policies) and rerun", v.Message, final))
	}

	say("Wait for data at s3://%s/segment-logs/ (up to %s).", test, cfg.Wait)
	if _, err := waitForDelivery(ctx, api, cfg, dest.ID, time.Time{}); err != nil {
		return noData(fmt.Errorf("no data arrived at %s: check the trust relationship and the IAM policy of the role: %w", test, err))
	}
	detail("data arrived")

	var names []string
	for _, d := range legacy {
		if d.Enabled {
			names = append(names, d.ID)
		}
	}
	question := fmt.Sprintf("Switch %s to bucket %s", dest.ID, final)
	if len(names) > 0 {
		question += " and disable the Amazon S3 destination(s) " + strings.Join(names, ", ")
	}
	if !cfg.Yes {
		ask := out
		if cfg.JSON && cfg.Question != nil {
			ask = cfg.Question
		} else if cfg.JSON {
			ask = io.Discard
		}
		fmt.Fprintf(ask, "%s? [y/N] ", question)
		line, _ := bufio.NewReader(in).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return errors.New("stopped before the switch; nothing was switched or disabled (rerun to continue)")
		}
	}
	say("Switch the bucket of %s to %s.", dest.ID, final)
	switched := time.Now()
	if _, err := api.call(ctx, http.MethodPatch, "/destinations/"+url.PathEscape(dest.ID),
		map[string]any{"settings": apiSettings{S3Bucket: final}}, nil); err != nil {
		return err
	}
	return finishMigration(ctx, api, cfg, log, dest, legacy, switched)
}

// finishMigration disables the legacy destinations, waits for data in the final location, and says
// what is left to do by hand.
func finishMigration(ctx context.Context, api *apiClient, cfg MigrateConfig, log *migrationLog, dest apiDestination, legacy []apiDestination, switched time.Time) error {
	say := log.step
	for _, d := range legacy {
		if !d.Enabled {
			continue
		}
		say("Disable the Amazon S3 destination %s.", d.ID)
		if _, err := api.call(ctx, http.MethodPatch, "/destinations/"+url.PathEscape(d.ID), map[string]any{"destinationId": d.ID, "enabled": false}, nil); err != nil {
			return err
		}
	}
	final := strings.TrimSuffix(cfg.Bucket, "/")
	say("Wait for data at s3://%s/segment-logs/ from %s (up to %s).", final, dest.ID, cfg.Wait)
	if _, err := waitForDelivery(ctx, api, cfg, dest.ID, switched); err != nil {
		return noData(fmt.Errorf("no data arrived at %s after the switch: %w", final, err))
	}
	log.detail("data arrived")
	say("Remove the test folder s3://%s/segment-logs/test/ from your bucket (s3dest never deletes from it), e.g.", final)
	log.detail("aws s3 rm --recursive s3://%s/segment-logs/test/", final)
	log.Done = true
	if log.text != nil {
		fmt.Fprintln(log.text, "Migration done.")
	}
	return nil
}

// noData is the error of a wait for data that ran out (a failed check, exit 3); other errors (the API
// unreachable) keep their own code.
func noData(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && ExitCode(err) == ExitError {
		return withExit(ExitCheckFailed, err)
	}
	return err
}

// waitForDelivery polls the destination's status until a file was delivered after since (any file when
// since is zero), and returns when.
func waitForDelivery(ctx context.Context, api *apiClient, cfg MigrateConfig, destinationID string, since time.Time) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Wait)
	defer cancel()
	t := time.NewTicker(cfg.Poll)
	defer t.Stop()
	for {
		var got struct {
			Status apiStatus `json:"status"`
		}
		if _, err := api.call(ctx, http.MethodGet, "/destinations/"+url.PathEscape(destinationID)+"/status", nil, &got); err != nil {
			return time.Time{}, err
		}
		for _, d := range got.Status.Days {
			at, err := time.Parse(time.RFC3339Nano, d.LastDeliveryAt)
			if files, _ := strconv.ParseInt(d.Files, 10, 64); err == nil && files > 0 && at.After(since) {
				return at, nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-t.C:
		}
	}
}
