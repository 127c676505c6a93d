package allinone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Status runs `s3dest status [destinationId…]`: per destination (every one when none is named) its
// validation and what each received day delivered or dead-lettered, then where it stands: files waiting
// in its copier lane (pending), the lag of its last delivered file (receivedAt of its oldest event to
// the bucket's acknowledgement), and with the retention: the deadline of the oldest waiting file, an
// extension, the files dead-lettered.
func Status(ctx context.Context, args []string, out io.Writer) error {
	c, err := newCommand("status")
	if err != nil {
		return err
	}
	c.fs.Usage = func() {
		fmt.Fprintln(c.fs.Output(), "usage: s3dest status [destinationId…]")
		c.fs.PrintDefaults()
	}
	for {
		if err := c.fs.Parse(args); err != nil {
			return err
		}
		if args = c.fs.Args(); len(args) == 0 {
			break
		}
		c.args, args = append(c.args, args[0]), args[1:]
	}
	api, err := newAPIClient(c.conn)
	if err != nil {
		return err
	}
	ids := c.args
	if len(ids) == 0 {
		all, err := api.listDestinations(ctx, url.Values{})
		if err != nil {
			return err
		}
		for _, d := range all {
			ids = append(ids, d.ID)
		}
	}
	var raws []json.RawMessage
	var rows, retention [][]string
	for _, id := range ids {
		var got struct {
			Status apiStatus `json:"status"`
		}
		raw, err := api.call(ctx, http.MethodGet, "/destinations/"+url.PathEscape(id)+"/status", nil, &got)
		if err != nil {
			return err
		}
		raws = append(raws, raw)
		st := got.Status
		validation := "not validated yet"
		if v := st.Validation; v != nil {
			validation = v.Code
		}
		if len(st.Days) == 0 {
			rows = append(rows, []string{id, yesNo(st.Enabled), validation, "-", "0", "0", "0", "0/0", "-", "-"})
		}
		for _, d := range st.Days {
			rows = append(rows, []string{id, yesNo(st.Enabled), validation, dayOf(d.ReceivedDayMs), d.Files, d.Events, d.Bytes,
				orZero(d.DeadFiles) + "/" + orZero(d.DeadEvents), orDash(d.LastDeliveryAt), orDash(d.LastError)})
		}
		if r := st.Retention; r != nil {
			lag := "-"
			if ld := st.LastDelivery; ld != nil && ld.Lag != "" {
				lag = humanDuration(ld.Lag) + " (" + ld.DeliveredAt + ")"
			}
			retention = append(retention, []string{id, orDash(humanDuration(r.Retention)), orZero(r.WaitingFiles), lag, orDash(r.OldestWaitingStagedAt),
				orDash(r.OldestWaitingDeadline), orDash(r.ExtendedUntil), orZero(r.DeadLetteredFiles) + "/" + orZero(r.DeadLetteredEvents)})
		}
	}
	if *c.json {
		b, _ := json.Marshal(map[string]any{"statuses": raws})
		return printJSON(out, b)
	}
	if len(ids) == 0 {
		return errors.New("no destinations yet")
	}
	if err := table(out, []string{"DESTINATION", "ENABLED", "VALIDATION", "DAY (UTC)", "FILES", "EVENTS", "BYTES", "DEAD-LETTERED FILES/EVENTS", "LAST DELIVERY", "LAST ERROR"}, rows); err != nil {
		return err
	}
	if len(retention) == 0 {
		return nil
	}
	fmt.Fprintln(out)
	return table(out, []string{"DESTINATION", "RETENTION", "WAITING FILES", "LAST FILE'S LAG (DELIVERED)", "OLDEST STAGED", "OLDEST DEADLINE", "EXTENDED UNTIL", "DEAD-LETTERED FILES/EVENTS"}, retention)
}

// orZero shows an absent count as 0.
func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// dayOf shows a received day (Unix ms of 00:00 UTC) as a date next to the folder name.
// humanDuration prints a JSON duration ("604800s", "60.221532113s") as a person reads one ("168h0m0s",
// "1m0.2s"); what does not parse is printed as it came. --json keeps the API's form.
func humanDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	if d >= time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func dayOf(ms string) string {
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return ms
	}
	return time.UnixMilli(n).UTC().Format("2006-01-02") + " (" + ms + ")"
}

// Workspace runs `s3dest workspace [--bucket B] [--region R] [--kms-key-arn ARN]`: the External ID and
// the IAM documents to attach to the customer's role, filled in.
func Workspace(ctx context.Context, args []string, out io.Writer) error {
	c, err := newCommand("workspace")
	if err != nil {
		return err
	}
	bucket := c.fs.String("bucket", "", "fill in the permission policy for this bucket[/prefix]")
	region := c.fs.String("region", "", "the bucket's region (picks the ARN partition)")
	kms := c.fs.String("kms-key-arn", "", "fill in the KMS policy for this key")
	api, err := c.parse(args, 0, "s3dest workspace [--bucket B] [--region R] [--kms-key-arn ARN]")
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"bucket": *bucket, "region": *region, "kmsKeyArn": *kms} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var got struct {
		IamSetup struct {
			ExternalID       string `json:"externalId"`
			PrincipalArn     string `json:"principalArn"`
			TrustPolicy      string `json:"trustPolicy"`
			PermissionPolicy string `json:"permissionPolicy"`
			KmsPolicy        string `json:"kmsPolicy"`
		} `json:"iamSetup"`
	}
	raw, err := api.call(ctx, http.MethodGet, "/workspace?"+q.Encode(), nil, &got)
	if err != nil {
		return err
	}
	if *c.json {
		return printJSON(out, raw)
	}
	s := got.IamSetup
	_, err = fmt.Fprintf(out, `Workspace ID (External ID): %s
Principal to trust:         %s

Trust relationship of your role:
%s

Permission policy of your role:
%s

Only if the bucket uses KMS encryption, also attach:
%s
`, s.ExternalID, orDash(s.PrincipalArn), s.TrustPolicy, s.PermissionPolicy, s.KmsPolicy)
	return err
}
