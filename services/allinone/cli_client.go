package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// The CLI's client commands (`s3dest sources|destinations|status|workspace|validate|migrate`) are a thin
// client of the admin REST API: every command is one or a few documented calls, so what the CLI does a script can do
// with curl. Tables for people, --json for programs: the API's "data" object unchanged, and for lists
// every page's items as one {"sources": [...]} or {"destinations": [...]}.

// ClientConfig says how to reach the admin API (connFlags finds it for the CLI).
type ClientConfig struct {
	AdminURL string `flag:"admin-url" env:"S3DEST_ADMIN_URL" default:"http://127.0.0.1:8081" help:"the admin REST API"`
	Token    string `flag:"admin-token" env:"S3DEST_ADMIN_TOKEN" oldflag:"token" secret:"true" help:"the admin bearer token"`
}

// ValidateConfig is what `s3dest validate <destinationId>` needs to reach the admin API.
type ValidateConfig = ClientConfig

// apiClient calls the admin REST API.
type apiClient struct {
	base, token string
	http        *http.Client
}

func newAPIClient(cfg ClientConfig) (*apiClient, error) {
	if err := checkAdminURL(cfg.AdminURL); err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, withExit(ExitUnreachable, fmt.Errorf("token: no admin token for %s: run `s3dest login --url %s`, or give --admin-token or S3DEST_ADMIN_TOKEN", cfg.AdminURL, cfg.AdminURL))
	}
	return &apiClient{base: strings.TrimSuffix(cfg.AdminURL, "/"), token: cfg.Token, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// call sends body (nil, or a value encoded as JSON) and decodes the answer's "data" into out (when not
// nil). raw receives the "data" object as sent, for --json. An error answer becomes an error with the
// API's message.
func (c *apiClient) call(ctx context.Context, method, path string, body, out any) (raw json.RawMessage, err error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, withExit(ExitUnreachable, fmt.Errorf("reach the admin API at %s: %w", c.base, err))
	}
	defer resp.Body.Close()
	var env struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return nil, withExit(ExitUnreachable, fmt.Errorf("%s %s: the admin API at %s refused the token (%d): run `s3dest login`, or give --admin-token or S3DEST_ADMIN_TOKEN",
			method, path, c.base, resp.StatusCode))
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return nil, fmt.Errorf("%s %s: the admin API answered %d with no JSON (is %s s3dest's admin URL?): %w", method, path, resp.StatusCode, c.base, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 { // 201 for a created source
		code := ExitError
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnprocessableEntity {
			code = ExitUsage // a value given was refused, and the message names it
		}
		if len(env.Errors) > 0 {
			return nil, withExit(code, fmt.Errorf("%s %s: %s (%d %s)", method, path, env.Errors[0].Message, resp.StatusCode, env.Errors[0].Type))
		}
		return nil, withExit(code, fmt.Errorf("%s %s: the admin API answered %d", method, path, resp.StatusCode))
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return env.Data, nil
}

// The API's objects as the CLI reads them (protojson: int64 as strings, enums as names).
type (
	apiSource struct {
		ID                string   `json:"id"`
		Name              string   `json:"name"`
		Slug              string   `json:"slug"`
		Enabled           bool     `json:"enabled"`
		WriteKeys         []string `json:"writeKeys"`
		RetiringWriteKeys []struct {
			WriteKey  string `json:"writeKey"`
			ExpiresAt string `json:"expiresAt"`
		} `json:"retiringWriteKeys"`
	}
	apiSettings struct {
		Region     string `json:"region,omitempty"`
		S3Bucket   string `json:"s3Bucket,omitempty"`
		IamRoleArn string `json:"iamRoleArn,omitempty"`
		Format     string `json:"format,omitempty"`
		Backfill   bool   `json:"backfill,omitempty"`
	}
	apiDestination struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Enabled  bool   `json:"enabled"`
		SourceID string `json:"sourceId"`
		Metadata struct {
			ID   string `json:"id"`
			Slug string `json:"slug"`
		} `json:"metadata"`
		Settings               apiSettings `json:"settings"`
		RetentionExtendedUntil string      `json:"retentionExtendedUntil"`
	}
	apiValidation struct {
		Ok         bool   `json:"ok"`
		Code       string `json:"code"`
		Message    string `json:"message"`
		FailedStep string `json:"failedStep"`
		CheckedAt  string `json:"checkedAt"`
		Steps      []struct {
			Step   string `json:"step"`
			Ok     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"steps"`
	}
	apiDay struct {
		ReceivedDayMs  string `json:"receivedDayMs"`
		Files          string `json:"files"`
		Events         string `json:"events"`
		Bytes          string `json:"bytes"`
		LastDeliveryAt string `json:"lastDeliveryAt"`
		LastError      string `json:"lastError"`
		DeadFiles      string `json:"deadLetteredFiles"`
		DeadEvents     string `json:"deadLetteredEvents"`
	}
	apiRetention struct {
		Retention             string `json:"retention"`
		ExtendedUntil         string `json:"extendedUntil"`
		DeadLetteredFiles     string `json:"deadLetteredFiles"`
		DeadLetteredEvents    string `json:"deadLetteredEvents"`
		WaitingFiles          string `json:"waitingFiles"`
		OldestWaitingStagedAt string `json:"oldestWaitingStagedAt"`
		OldestWaitingDeadline string `json:"oldestWaitingDeadline"`
	}
	apiStatus struct {
		DestinationID string         `json:"destinationId"`
		Enabled       bool           `json:"enabled"`
		Days          []apiDay       `json:"days"`
		Validation    *apiValidation `json:"validation"`
		Retention     *apiRetention  `json:"retention"`
		LastDelivery  *struct {
			DeliveredAt string `json:"deliveredAt"`
			Lag         string `json:"lag"`
			Key         string `json:"key"`
		} `json:"lastDelivery"`
	}
	apiPagination struct {
		Next string `json:"next"` // absent (or null) on the last page
	}
)

// listDestinations pages through GET /destinations with the given filter query (without pagination). raw
// holds each destination as the API sent it.
func (c *apiClient) listDestinations(ctx context.Context, query url.Values) ([]apiDestination, error) {
	all, _, err := c.listDestinationsRaw(ctx, query)
	return all, err
}

func (c *apiClient) listDestinationsRaw(ctx context.Context, query url.Values) (all []apiDestination, raw []json.RawMessage, err error) {
	cursor := ""
	for {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("pagination.count", "200")
		if cursor != "" {
			q.Set("pagination.cursor", cursor)
		}
		var page struct {
			Destinations []json.RawMessage `json:"destinations"`
			Pagination   apiPagination     `json:"pagination"`
		}
		if _, err := c.call(ctx, http.MethodGet, "/destinations?"+q.Encode(), nil, &page); err != nil {
			return nil, nil, err
		}
		for _, r := range page.Destinations {
			var d apiDestination
			if err := json.Unmarshal(r, &d); err != nil {
				return nil, nil, err
			}
			all, raw = append(all, d), append(raw, r)
		}
		if cursor = page.Pagination.Next; cursor == "" {
			return all, raw, nil
		}
	}
}

// printJSON writes the API's data object, indented.
func printJSON(out io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := out.Write(b.Bytes())
	return err
}

// printValue writes v as indented JSON.
func printValue(out io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return printJSON(out, b)
}

// table writes rows aligned in columns, however wide a cell. A cell's tabs, newlines and other control
// characters (a name or an error message can hold them) are shown as spaces, so that they cannot break
// the columns.
func table(out io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	line := func(cells []string) {
		clean := make([]string, len(cells))
		for i, c := range cells {
			clean[i] = strings.Map(func(r rune) rune {
				if unicode.IsControl(r) {
					return ' '
				}
				return r
			}, c)
		}
		fmt.Fprintln(tw, strings.TrimRight(strings.Join(clean, "\t"), " "))
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// orDash shows an empty value as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
