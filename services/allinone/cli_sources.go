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

const sourcesUsage = `usage: s3dest sources <command> [flags]

commands:
  list                               every source
  get <sourceId>                     one source with its write keys
  create --slug SLUG [--name NAME] [--enabled=false]
  update <sourceId> [--name NAME] [--slug SLUG] [--enabled=true|false]
  delete <sourceId>                  (its destinations must be deleted first)
  create-key <sourceId>              add a write key
  rotate-key <sourceId> <writeKey> [--grace 24h]
                                     add a new key; the old one works for the grace (0 revokes it now)
  revoke-key <sourceId> <writeKey>   the key stops working at once

Every command takes --admin-url, --admin-token and --json.
`

// Sources runs `s3dest sources …`.
func Sources(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(sourcesUsage)
	}
	c, err := newCommand("sources " + args[0])
	if err != nil {
		return err
	}
	var raw json.RawMessage
	var src struct {
		Source   apiSource `json:"source"`
		WriteKey string    `json:"writeKey"`
	}
	switch args[0] {
	case "list":
		api, err := c.parse(args[1:], 0, "s3dest sources list")
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
			if _, err := api.call(ctx, http.MethodGet, "/sources?"+q.Encode(), nil, &page); err != nil {
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
		if *c.json {
			b, _ := json.Marshal(map[string]any{"sources": raws})
			return printJSON(out, b)
		}
		rows := make([][]string, 0, len(all))
		for _, s := range all {
			rows = append(rows, []string{s.ID, s.Slug, s.Name, yesNo(s.Enabled), strconv.Itoa(len(s.WriteKeys))})
		}
		return table(out, []string{"ID", "SLUG", "NAME", "ENABLED", "WRITE KEYS"}, rows)
	case "get":
		api, err := c.parse(args[1:], 1, "s3dest sources get <sourceId>")
		if err != nil {
			return err
		}
		raw, err = api.call(ctx, http.MethodGet, "/sources/"+url.PathEscape(c.arg(0)), nil, &src)
		if err != nil {
			return err
		}
	case "create":
		slug := c.fs.String("slug", "", "the source's slug (lowercase letters, digits, - and _)")
		name := c.fs.String("name", "", "the source's name (default: the slug)")
		enabled := c.fs.Bool("enabled", true, "whether the source accepts events")
		api, err := c.parse(args[1:], 0, "s3dest sources create --slug SLUG [--name NAME] [--enabled=false]")
		if err != nil {
			return err
		}
		raw, err = api.call(ctx, http.MethodPost, "/sources", map[string]any{"slug": *slug, "name": *name, "enabled": *enabled}, &src)
		if err != nil {
			return err
		}
	case "update":
		name := c.fs.String("name", "", "new name")
		slug := c.fs.String("slug", "", "new slug")
		enabled := c.fs.Bool("enabled", true, "enable or disable (--enabled=false) the source")
		api, err := c.parse(args[1:], 1, "s3dest sources update <sourceId> [--name NAME] [--slug SLUG] [--enabled=true|false]")
		if err != nil {
			return err
		}
		body := map[string]any{}
		if c.set("name") {
			body["name"] = *name
		}
		if c.set("slug") {
			body["slug"] = *slug
		}
		if c.set("enabled") {
			body["enabled"] = *enabled
		}
		if len(body) == 0 {
			return errors.New("update: give at least one of --name, --slug, --enabled")
		}
		raw, err = api.call(ctx, http.MethodPatch, "/sources/"+url.PathEscape(c.arg(0)), body, &src)
		if err != nil {
			return err
		}
	case "delete":
		return c.deleteOne(ctx, args[1:], "source", "/sources/", out)
	case "create-key":
		api, err := c.parse(args[1:], 1, "s3dest sources create-key <sourceId>")
		if err != nil {
			return err
		}
		raw, err = api.call(ctx, http.MethodPost, "/sources/"+url.PathEscape(c.arg(0))+"/writekey", nil, &src)
		if err != nil {
			return err
		}
	case "rotate-key":
		grace := c.fs.Duration("grace", -1, "how long the old key keeps working (default: the server's, 0 revokes it now)")
		api, err := c.parse(args[1:], 2, "s3dest sources rotate-key <sourceId> <writeKey> [--grace 24h]")
		if err != nil {
			return err
		}
		body := map[string]any{}
		if c.set("grace") {
			body["gracePeriod"] = fmt.Sprintf("%.9fs", grace.Seconds())
		}
		raw, err = api.call(ctx, http.MethodPost, "/sources/"+url.PathEscape(c.arg(0))+"/writekey/"+url.PathEscape(c.arg(1))+"/rotate", body, &src)
		if err != nil {
			return err
		}
	case "revoke-key":
		api, err := c.parse(args[1:], 2, "s3dest sources revoke-key <sourceId> <writeKey>")
		if err != nil {
			return err
		}
		// The answer is {"status":"SUCCESS"}, as Segment's; the table shows the source after it.
		if raw, err = api.call(ctx, http.MethodDelete, "/sources/"+url.PathEscape(c.arg(0))+"/writekey/"+url.PathEscape(c.arg(1)), nil, nil); err != nil {
			return err
		}
		if !*c.json {
			if _, err := api.call(ctx, http.MethodGet, "/sources/"+url.PathEscape(c.arg(0)), nil, &src); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], sourcesUsage)
	}
	if *c.json {
		return printJSON(out, raw)
	}
	return printSource(out, src.Source, src.WriteKey)
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
