package allinone

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func statusCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [destinationId…] [flags]",
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
	var blocks []string
	for _, id := range ids {
		var got struct {
			Status apiStatus `json:"status"`
		}
		raw, err := api.call(ctx, http.MethodGet, "/destinations/"+url.PathEscape(id)+"/status", nil, &got)
		if err != nil {
			return err
		}
		raws = append(raws, raw)
		if !a.json {
			block, err := statusBlock(id, got.Status)
			if err != nil {
				return err
			}
			blocks = append(blocks, block)
		}
	}
	if a.json {
		return printValue(out, map[string]any{"statuses": orEmpty(raws)})
	}
	if len(ids) == 0 {
		_, err := fmt.Fprintln(out, "No destinations yet: s3dest destinations create -h says how to add one.")
		return err
	}
	_, err := io.WriteString(out, strings.Join(blocks, "\n"))
	return err
}

// statusBlock is one destination's status as a person reads it: the ID on a line of its own (however
// long, it widens no column), where the destination stands, then a table of its received days.
func statusBlock(id string, st apiStatus) (string, error) {
	var b strings.Builder
	b.WriteString("DESTINATION " + id + "\n")
	validation := "not validated yet"
	if v := st.Validation; v != nil {
		validation = v.Code + ": " + v.Message
	}
	rows := [][]string{{"ENABLED", yesNo(st.Enabled)}, {"VALIDATION", validation}}
	if r := st.Retention; r != nil {
		lag := "-"
		if ld := st.LastDelivery; ld != nil && ld.Lag != "" {
			lag = humanDuration(ld.Lag) + " (delivered " + shortTime(ld.DeliveredAt) + ")"
		}
		rows = append(rows, []string{"RETENTION", orDash(humanDuration(r.Retention))}, []string{"WAITING FILES", orZero(r.WaitingFiles)},
			[]string{"LAST FILE'S LAG", lag}, []string{"OLDEST STAGED", orDash(shortTime(r.OldestWaitingStagedAt))},
			[]string{"OLDEST DEADLINE", orDash(shortTime(r.OldestWaitingDeadline))}, []string{"EXTENDED UNTIL", orDash(shortTime(r.ExtendedUntil))},
			[]string{"DEAD-LETTERED FILES/EVENTS", orZero(r.DeadLetteredFiles) + "/" + orZero(r.DeadLetteredEvents)})
	}
	days := make([][]string, 0, len(st.Days))
	for _, d := range st.Days {
		days = append(days, []string{dayOf(d.ReceivedDayMs), d.Files, d.Events, d.Bytes,
			orZero(d.DeadFiles) + "/" + orZero(d.DeadEvents), orDash(shortTime(d.LastDeliveryAt)), orDash(d.LastError)})
	}
	var fields, table2 strings.Builder
	if err := table(&fields, []string{"", ""}, rows); err != nil {
		return "", err
	}
	b.WriteString(indentLines(strings.TrimPrefix(fields.String(), "\n")))
	if len(days) == 0 {
		b.WriteString("  no deliveries yet\n")
		return b.String(), nil
	}
	b.WriteString("\n")
	if err := table(&table2, []string{"DAY (UTC)", "FILES", "EVENTS", "BYTES", "DEAD-LETTERED FILES/EVENTS", "LAST DELIVERY", "LAST ERROR"}, days); err != nil {
		return "", err
	}
	b.WriteString(indentLines(table2.String()))
	return b.String(), nil
}

// indentLines puts two spaces before every line of s.
func indentLines(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}

// shortTime shows an API timestamp to the second, in UTC ("2026-12-02T10:33:12Z"); what does not
// parse is shown as it came. --json keeps the API's form.
func shortTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format(time.RFC3339)
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
		Use:   "workspace [flags]",
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
