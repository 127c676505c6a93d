package allinone

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func sourcesCommand(a *app) *cobra.Command {
	cmd := group("sources", "list, create, update and delete sources; create, rotate and revoke write keys",
		a.sourcesList(), a.sourcesGet(), a.sourcesCreate(), a.sourcesUpdate(), a.deleteCommand("source", "/sources/", "its destinations must be deleted first"),
		a.sourcesCreateKey(), a.sourcesRotateKey(), a.sourcesRevokeKey())
	cmd.GroupID = groupManage
	return a.addClientFlags(cmd)
}

// sourceAnswer is the API's data for one source: the source, and a key just created.
type sourceAnswer struct {
	Source   apiSource `json:"source"`
	WriteKey string    `json:"writeKey"`
}

// printSourceAnswer prints the API's data as it came (--json) or as a table.
func (a *app) printSourceAnswer(raw json.RawMessage, src sourceAnswer) error {
	if a.json {
		return printJSON(a.out, raw)
	}
	return printSource(a.out, src.Source, src.WriteKey)
}

func (a *app) sourcesList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "every source (--json: {\"sources\": [...]})",
		Args:  positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := a.client(cmd)
			if err != nil {
				return err
			}
			var all []apiSource
			var raws []json.RawMessage
			for cursor := ""; ; {
				q := url.Values{"pagination.count": {"200"}}
				if cursor != "" {
					q.Set("pagination.cursor", cursor)
				}
				var page struct {
					Sources    []json.RawMessage `json:"sources"`
					Pagination apiPagination     `json:"pagination"`
				}
				if _, err := api.call(cmd.Context(), http.MethodGet, "/sources?"+q.Encode(), nil, &page); err != nil {
					return err
				}
				for _, r := range page.Sources {
					var s apiSource
					if err := json.Unmarshal(r, &s); err != nil {
						return err
					}
					all, raws = append(all, s), append(raws, r)
				}
				if cursor = page.Pagination.Next; cursor == "" {
					break
				}
			}
			if a.json {
				return printValue(a.out, map[string]any{"sources": orEmpty(raws)})
			}
			rows := make([][]string, 0, len(all))
			for _, s := range all {
				rows = append(rows, []string{s.ID, s.Slug, s.Name, yesNo(s.Enabled), strconv.Itoa(len(s.WriteKeys))})
			}
			return table(a.out, []string{"ID", "SLUG", "NAME", "ENABLED", "WRITE KEYS"}, rows)
		},
	}
}

func (a *app) sourcesGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get <sourceId>",
		Short: "one source with its write keys",
		Args:  positional("<sourceId>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sourceCall(cmd, http.MethodGet, "/sources/"+url.PathEscape(args[0]), nil)
		},
	}
}

// sourceCall makes one call whose answer is a source, and prints it.
func (a *app) sourceCall(cmd *cobra.Command, method, path string, body any) error {
	api, err := a.client(cmd)
	if err != nil {
		return err
	}
	var src sourceAnswer
	raw, err := api.call(cmd.Context(), method, path, body, &src)
	if err != nil {
		return err
	}
	return a.printSourceAnswer(raw, src)
}

func (a *app) sourcesCreate() *cobra.Command {
	var slug, name string
	var enabled bool
	cmd := &cobra.Command{
		Use:     "create --slug SLUG [flags]",
		Short:   "a new source with one write key",
		Example: "  s3dest sources create --slug shop --name 'Web shop'",
		Args:    positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.sourceCall(cmd, http.MethodPost, "/sources", map[string]any{"slug": slug, "name": name, "enabled": enabled})
		},
	}
	cmd.Flags().StringVar(&slug, "slug", "", "the source's slug (lowercase letters, digits, - and _)")
	cmd.Flags().StringVar(&name, "name", "", "the source's name (default: the slug)")
	cmd.Flags().BoolVar(&enabled, "enabled", true, "whether the source accepts events")
	return cmd
}

func (a *app) sourcesUpdate() *cobra.Command {
	var slug, name string
	var enabled bool
	cmd := &cobra.Command{
		Use:     "update <sourceId> [flags]",
		Short:   "change a source's name, slug, or whether it accepts events",
		Example: "  s3dest sources update <sourceId> --enabled=false",
		Args:    positional("<sourceId>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := changedFlags(cmd, map[string]any{"name": name, "slug": slug, "enabled": enabled})
			if len(body) == 0 {
				return usageErrorf("%s: give at least one of --name, --slug, --enabled", cmd.CommandPath())
			}
			return a.sourceCall(cmd, http.MethodPatch, "/sources/"+url.PathEscape(args[0]), body)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "new name")
	cmd.Flags().StringVar(&slug, "slug", "", "new slug")
	cmd.Flags().BoolVar(&enabled, "enabled", true, "enable or disable (--enabled=false) the source")
	return cmd
}

// changedFlags keeps the values whose flags were given.
func changedFlags(cmd *cobra.Command, values map[string]any) map[string]any {
	body := map[string]any{}
	for name, v := range values {
		if cmd.Flags().Changed(name) {
			body[name] = v
		}
	}
	return body
}

func (a *app) sourcesCreateKey() *cobra.Command {
	return &cobra.Command{
		Use:   "create-key <sourceId>",
		Short: "add a write key to a source",
		Args:  positional("<sourceId>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sourceCall(cmd, http.MethodPost, "/sources/"+url.PathEscape(args[0])+"/writekey", nil)
		},
	}
}

func (a *app) sourcesRotateKey() *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rotate-key <sourceId> <writeKey> [flags]",
		Short: "add a new write key; the old one works for the grace (0 revokes it now)",
		Args:  positional("<sourceId>", "<writeKey>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if cmd.Flags().Changed("grace") {
				body["gracePeriod"] = fmt.Sprintf("%.9fs", grace.Seconds())
			}
			return a.sourceCall(cmd, http.MethodPost, "/sources/"+url.PathEscape(args[0])+"/writekey/"+url.PathEscape(args[1])+"/rotate", body)
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 0, "how long the old key keeps working (default: the server's; 0 revokes it now)")
	return cmd
}

func (a *app) sourcesRevokeKey() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke-key <sourceId> <writeKey>",
		Short: "the write key stops working at once",
		Args:  positional("<sourceId>", "<writeKey>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := a.client(cmd)
			if err != nil {
				return err
			}
			// The answer is {"status":"SUCCESS"}, as Segment's; the table shows the source after it.
			raw, err := api.call(cmd.Context(), http.MethodDelete, "/sources/"+url.PathEscape(args[0])+"/writekey/"+url.PathEscape(args[1]), nil, nil)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.out, raw)
			}
			return a.sourceCall(cmd, http.MethodGet, "/sources/"+url.PathEscape(args[0]), nil)
		},
	}
}

// deleteCommand is `s3dest <kind>s delete <id>`: DELETE collection/<id>.
func (a *app) deleteCommand(kind, collection, note string) *cobra.Command {
	return &cobra.Command{
		Use:   "delete <" + kind + "Id>",
		Short: "delete a " + kind + " (" + note + ")",
		Args:  positional("<" + kind + "Id>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := a.client(cmd)
			if err != nil {
				return err
			}
			raw, err := api.call(cmd.Context(), http.MethodDelete, collection+url.PathEscape(args[0]), nil, nil)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.out, raw)
			}
			_, err = fmt.Fprintf(a.out, "%s %s deleted\n", kind, args[0])
			return err
		},
	}
}

// orEmpty keeps an empty list a list in JSON ([] rather than null).
func orEmpty(raws []json.RawMessage) []json.RawMessage {
	if raws == nil {
		return []json.RawMessage{}
	}
	return raws
}

func printSource(out io.Writer, s apiSource, newKey string) error {
	rows := [][]string{{"ID", s.ID}, {"SLUG", s.Slug}, {"NAME", s.Name}, {"ENABLED", yesNo(s.Enabled)}}
	for _, k := range s.WriteKeys {
		label := "WRITE KEY"
		if k == newKey {
			label = "WRITE KEY (new)"
		}
		rows = append(rows, []string{label, k})
	}
	for _, k := range s.RetiringWriteKeys {
		until := k.ExpiresAt
		if t, err := time.Parse(time.RFC3339Nano, until); err == nil {
			until = t.UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{"RETIRING KEY", k.WriteKey + "  (works until " + until + ")"})
	}
	return table(out, []string{"FIELD", "VALUE"}, rows)
}
