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
}

// migrateCommand parses `s3dest migrate` flags.
func migrateCommand(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	c, err := newCommand("migrate")
	if err != nil {
		return err
	}
	cfg := MigrateConfig{}
	c.fs.StringVar(&cfg.SourceID, "source", "", "the source whose Amazon S3 destination moves to AWS S3 (required)")
	c.fs.StringVar(&cfg.RoleARN, "role-arn", "", "the IAM role you created for s3dest (required)")
	c.fs.StringVar(&cfg.Bucket, "bucket", "", "the bucket[/prefix] (default: the Amazon S3 destination's)")
	c.fs.StringVar(&cfg.Region, "region", "", "the bucket's region (default: the Amazon S3 destination's)")
	c.fs.StringVar(&cfg.Name, "name", "AWS S3", "the new destination's name")
	c.fs.BoolVar(&cfg.Yes, "yes", false, "do not ask before switching the bucket and disabling the old destination")
	c.fs.DurationVar(&cfg.Wait, "wait", 2*time.Hour, "how long to wait for data at each check (the reference: about an hour)")
	c.fs.DurationVar(&cfg.Poll, "poll", 10*time.Second, "how often to look for data meanwhile")
	if _, err := c.parse(args, 0, "s3dest migrate --source ID --role-arn ARN [--bucket B] [--region R] [--yes]"); err != nil {
		return err
	}
	cfg.ClientConfig = c.conn
	return Migrate(ctx, cfg, in, out)
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
func Migrate(ctx context.Context, cfg MigrateConfig, in io.Reader, out io.Writer) error {
	api, err := newAPIClient(cfg.ClientConfig)
	if err != nil {
		return err
	}
	switch {
	case cfg.SourceID == "":
		return errors.New("source: the source to migrate is required (--source)")
	case cfg.Poll <= 0 || cfg.Wait <= 0:
		return errors.New("wait and poll: must be positive")
	}
	step := 0
	say := func(format string, args ...any) {
		step++
		fmt.Fprintf(out, "Step %d. %s\n", step, fmt.Sprintf(format, args...))
	}

	say("Find the Amazon S3 destinations of source %s.", cfg.SourceID)
	legacy, err := api.listDestinations(ctx, url.Values{"sourceId": {cfg.SourceID}, "slug": {layout.AmazonS3Slug}})
	if err != nil {
		return err
	}
	for _, d := range legacy {
		fmt.Fprintf(out, "  %s %q: bucket %s in %s, enabled: %s\n", d.ID, d.Name, d.Settings.S3Bucket, d.Settings.Region, yesNo(d.Enabled))
	}
	if len(legacy) == 0 {
		fmt.Fprintln(out, "  none: nothing to disable at the end")
	}
	if cfg.Bucket == "" || cfg.Region == "" {
		if len(legacy) == 0 {
			return errors.New("bucket and region: the source has no Amazon S3 destination to take them from; give --bucket and --region")
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
			return errors.New("role-arn: the IAM role you created for s3dest is required (--role-arn); `s3dest workspace --bucket " + final + "` shows the policies it needs")
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
		fmt.Fprintf(out, "  created %s\n", dest.ID)
	case existing[0].Settings.S3Bucket == test:
		dest = existing[0]
		say("Reuse the AWS S3 destination %s, already writing to %s.", dest.ID, test)
	case existing[0].Settings.S3Bucket == final:
		dest = existing[0]
		say("The AWS S3 destination %s already writes to %s: the switch is done.", dest.ID, final)
		return finishMigration(ctx, api, cfg, out, say, dest, legacy, time.Time{})
	default:
		return fmt.Errorf("source %s already has an AWS S3 destination %s writing to %s, neither %s nor %s; migrate will not change it",
			cfg.SourceID, existing[0].ID, existing[0].Settings.S3Bucket, test, final)
	}

	say("Validate the new destination.")
	v, err := api.validate(ctx, dest.ID)
	if err != nil {
		return err
	}
	printValidation(indent{out}, v)
	if !v.Ok {
		return fmt.Errorf("validation failed: %s; fix the role (`s3dest workspace --bucket %s` shows its policies) and rerun", v.Message, final)
	}

	say("Wait for data at s3://%s/segment-logs/ (up to %s).", test, cfg.Wait)
	if _, err := waitForDelivery(ctx, api, cfg, dest.ID, time.Time{}); err != nil {
		return fmt.Errorf("no data arrived at %s: check the trust relationship and the IAM policy of the role: %w", test, err)
	}
	fmt.Fprintln(out, "  data arrived")

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
		fmt.Fprintf(out, "%s? [y/N] ", question)
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
	return finishMigration(ctx, api, cfg, out, say, dest, legacy, switched)
}

// finishMigration disables the legacy destinations, waits for data in the final location, and says
// what is left to do by hand.
func finishMigration(ctx context.Context, api *apiClient, cfg MigrateConfig, out io.Writer, say func(string, ...any), dest apiDestination, legacy []apiDestination, switched time.Time) error {
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
		return fmt.Errorf("no data arrived at %s after the switch: %w", final, err)
	}
	fmt.Fprintln(out, "  data arrived")
	say("Remove the test folder s3://%s/segment-logs/test/ from your bucket (s3dest never deletes from it), e.g.\n  aws s3 rm --recursive s3://%s/segment-logs/test/", final, final)
	fmt.Fprintln(out, "Migration done.")
	return nil
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

// indent prefixes every line written with two spaces.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	s := strings.TrimSuffix(string(p), "\n")
	_, err := io.WriteString(i.w, "  "+strings.ReplaceAll(s, "\n", "\n  ")+"\n")
	return len(p), err
}
