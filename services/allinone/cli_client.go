package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/s3dest/s3dest/pkg/platform"
)

// The CLI (`s3dest sources|destinations|status|workspace|validate|migrate`) is a thin client of the
// admin REST API: every command is one or a few documented calls, so what the CLI does a script can do
// with curl. Tables for people, --json for programs: the API's "data" object unchanged, and for lists
// every page's items as one {"sources": [...]} or {"destinations": [...]}.

// ClientConfig says how to reach the admin API.
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
	if cfg.Token == "" {
		return nil, errors.New("admin-token: the admin bearer token is required (--admin-token, --admin-token-file or S3DEST_ADMIN_TOKEN)")
	}
	if _, err := url.ParseRequestURI(cfg.AdminURL); err != nil {
		return nil, fmt.Errorf("admin-url: %q is not a URL: %w", cfg.AdminURL, err)
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
		return nil, fmt.Errorf("reach the admin API: %w", err)
	}
	defer resp.Body.Close()
	var env struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return nil, fmt.Errorf("%s %s: the admin API answered %d with no JSON: %w", method, path, resp.StatusCode, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 { // 201 for a created source
		if len(env.Errors) > 0 {
			return nil, fmt.Errorf("%s %s: %s (%d %s)", method, path, env.Errors[0].Message, resp.StatusCode, env.Errors[0].Type)
		}
		return nil, fmt.Errorf("%s %s: the admin API answered %d", method, path, resp.StatusCode)
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

// command is a CLI command's flags: the connection, --json, and its own.
type command struct {
	fs   *flag.FlagSet
	conn ClientConfig
	json *bool
	args []string // positional arguments
}

func newCommand(name string) (*command, error) {
	c := &command{fs: flag.NewFlagSet("s3dest "+name, flag.ContinueOnError)}
	if err := platform.Bind(c.fs, &c.conn); err != nil {
		return nil, err
	}
	c.json = c.fs.Bool("json", false, "print the API's JSON instead of a table")
	return c, nil
}

// parse parses args and returns the client; errHelp when -h was asked.
func (c *command) parse(args []string, nargs int, usage string) (*apiClient, error) {
	c.fs.Usage = func() {
		fmt.Fprintf(c.fs.Output(), "usage: %s\n", usage)
		c.fs.PrintDefaults()
	}
	// Flags may come before or after the positional arguments (`update <id> --name x`).
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, err
		}
		if args = c.fs.Args(); len(args) == 0 {
			break
		}
		c.args, args = append(c.args, args[0]), args[1:]
	}
	if len(c.args) != nargs {
		return nil, fmt.Errorf("usage: %s", usage)
	}
	return newAPIClient(c.conn)
}

// arg is the i-th positional argument.
func (c *command) arg(i int) string { return c.args[i] }

// deleteOne runs `s3dest <kind>s delete <id>`: DELETE collection/<id>.
func (c *command) deleteOne(ctx context.Context, args []string, kind, collection string, out io.Writer) error {
	api, err := c.parse(args, 1, "s3dest "+kind+"s delete <"+kind+"Id>")
	if err != nil {
		return err
	}
	raw, err := api.call(ctx, http.MethodDelete, collection+url.PathEscape(c.arg(0)), nil, nil)
	if err != nil {
		return err
	}
	if *c.json {
		return printJSON(out, raw)
	}
	_, err = fmt.Fprintf(out, "%s %s deleted\n", kind, c.arg(0))
	return err
}

// set reports whether a flag was given.
func (c *command) set(name string) bool {
	found := false
	c.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
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

// table writes rows aligned in columns.
func table(out io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
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

// RunCLI runs a client command: args[0] is validate, sources, destinations, status, workspace or
// migrate. in answers migrate's question.
func RunCLI(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	var err error
	switch args[0] {
	case "validate":
		err = validateCommand(ctx, args[1:], out)
	case "sources":
		err = Sources(ctx, args[1:], out)
	case "destinations":
		err = Destinations(ctx, args[1:], out)
	case "status":
		err = Status(ctx, args[1:], out)
	case "workspace":
		err = Workspace(ctx, args[1:], out)
	case "migrate":
		err = migrateCommand(ctx, args[1:], in, out)
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
