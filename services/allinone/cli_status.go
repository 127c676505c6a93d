package allinone

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func statusCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [destinationId…]",
		Short: "validation, deliveries and dead letters per received day; waiting files and retention",
		Long: `Per destination (every one when none is named): its validation and what each received day delivered
or dead-lettered; then where it stands: files waiting in its copier lane, the lag of its last
delivered file, the retention deadline of the oldest waiting file, an extension, the files
dead-lettered (--json: {"statuses": [...]}, the API's objects).`,
		Args:    positional("[destinationId…]"),
		GroupID: groupManage,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := a.client(cmd)
			if err != nil {
				return err
			}
			return a.status(cmd.Context(), api, args)
		},
	}
	return a.addClientFlags(cmd)
}

// status prints the status of the destinations ids (every one when none).
func (a *app) status(ctx context.Context, api *apiClient, ids []string) error {
	out := a.out
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
	if a.json {
		return printValue(out, map[string]any{"statuses": orEmpty(raws)})
	}
	if len(ids) == 0 {
		_, err := fmt.Fprintln(out, "No destinations yet: s3dest destinations create -h says how to add one.")
		return err
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

func workspaceCommand(a *app) *cobra.Command {
	var bucket, region, kms string
	cmd := &cobra.Command{
		Use:   "workspace [--bucket B] [--region R] [--kms-key-arn ARN]",
		Short: "the External ID and the IAM policies your role needs",
		Long: `Prints the workspace ID, which customer roles require as External ID, the principal they trust, and
the trust and permission policies to attach to the role, filled in for --bucket (and the KMS policy
for --kms-key-arn).`,
		Example: "  s3dest workspace --bucket acme-logs/events --region eu-west-1",
		Args:    positional(),
		GroupID: groupManage,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := a.client(cmd)
			if err != nil {
				return err
			}
			return a.workspace(cmd.Context(), api, map[string]string{"bucket": bucket, "region": region, "kmsKeyArn": kms})
		},
	}
	cmd.Flags().StringVar(&bucket, "bucket", "", "fill in the permission policy for this bucket[/prefix]")
	cmd.Flags().StringVar(&region, "region", "", "the bucket's region (picks the ARN partition)")
	cmd.Flags().StringVar(&kms, "kms-key-arn", "", "fill in the KMS policy for this key")
	return a.addClientFlags(cmd)
}

// workspace prints the workspace's IAM setup, filled in with params.
func (a *app) workspace(ctx context.Context, api *apiClient, params map[string]string) error {
	out := a.out
	q := url.Values{}
	for k, v := range params {
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
	if a.json {
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
