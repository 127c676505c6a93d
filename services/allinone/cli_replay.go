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
	"strings"
	"time"
)

const replayUsage = `usage: s3dest replay <command> [flags]

commands:
  --destination ID --from DAY --to DAY [--overwrite] [--detach]
                      re-deliver the destination's staged files of the received days DAY..DAY (both
                      included; DAY is YYYY-MM-DD in UTC or the key's day in Unix ms) still in
                      retention; a key that exists is skipped unless --overwrite. Follows the replay
                      until it ends (--detach: print its ID and return)
  status ID           where the replay stands; --follow follows it until it ends
  cancel ID           stop it after the file in flight (resume continues from there)
  resume ID           continue a cancelled or failed replay from where it stopped
  list --destination ID
                      the destination's replays, newest first

Ctrl-C while following stops following only: the replay goes on in the copiers; "s3dest replay
status ID --follow" follows it again and "s3dest replay cancel ID" stops it.
Every command takes --admin-url, --token and --json; status, cancel and resume take --destination to
skip looking the replay up among the destinations.
`

// apiReplay is a replay as the admin API answers it (protojson: 64-bit numbers are strings).
type apiReplay struct {
	ID            string `json:"id"`
	DestinationID string `json:"destinationId"`
	FromDayMs     string `json:"fromDayMs"`
	ToDayMs       string `json:"toDayMs"`
	Overwrite     bool   `json:"overwrite"`
	State         string `json:"state"`
	Progress      struct {
		FilesTotal    string `json:"filesTotal"`
		BytesTotal    string `json:"bytesTotal"`
		FilesWritten  string `json:"filesWritten"`
		FilesSkipped  string `json:"filesSkipped"`
		FilesReplaced string `json:"filesReplaced"`
		FilesExpired  string `json:"filesExpired"`
		BytesDone     string `json:"bytesDone"`
		Counted       bool   `json:"counted"`
	} `json:"progress"`
	StartedAt string `json:"startedAt"`
	UpdatedAt string `json:"updatedAt"`
	LastError string `json:"lastError"`
}

func (r apiReplay) state() string {
	return strings.ToLower(strings.TrimPrefix(r.State, "REPLAY_STATE_"))
}

func (r apiReplay) running() bool { return r.state() == "running" }

func num(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// filesDone is every file of the replay dealt with, whatever the outcome.
func (r apiReplay) filesDone() int64 {
	p := r.Progress
	return num(p.FilesWritten) + num(p.FilesSkipped) + num(p.FilesReplaced) + num(p.FilesExpired)
}

// eta is the time left at the replay's average rate since it started, "" while unknown.
func (r apiReplay) eta() string {
	started, err1 := time.Parse(time.RFC3339Nano, r.StartedAt)
	updated, err2 := time.Parse(time.RFC3339Nano, r.UpdatedAt)
	done, total := num(r.Progress.BytesDone), num(r.Progress.BytesTotal)
	if err1 != nil || err2 != nil || done == 0 || !updated.After(started) || !r.running() {
		return ""
	}
	left := time.Duration(float64(total-done) / float64(done) * float64(updated.Sub(started)))
	return left.Round(time.Second).String()
}

// line is the replay's progress in one line: files, bytes, outcomes, ETA.
func (r apiReplay) line() string {
	p := r.Progress
	total := "?"
	if p.Counted {
		total = p.FilesTotal
	}
	s := fmt.Sprintf("replay %s %s: files %d/%s, %s/%s (written %s, skipped %s, replaced %s, gone from staging %s)",
		r.ID, r.state(), r.filesDone(), total, bytesOf(num(p.BytesDone)), bytesOf(num(p.BytesTotal)),
		p.FilesWritten, p.FilesSkipped, p.FilesReplaced, p.FilesExpired)
	if eta := r.eta(); eta != "" {
		s += ", ETA " + eta
	}
	if r.LastError != "" {
		s += "; last error: " + r.LastError
	}
	return s
}

func bytesOf(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// replayFollowInterval is how often a followed replay is read again.
const replayFollowInterval = time.Second

// Replay runs `s3dest replay …`.
func Replay(ctx context.Context, args []string, out io.Writer) error {
	sub := "start"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	c, err := newCommand("replay " + sub)
	if err != nil {
		return err
	}
	destination := c.fs.String("destination", "", "the destination's ID")
	var (
		raw json.RawMessage
		got struct {
			Replay apiReplay `json:"replay"`
		}
		follow bool
	)
	switch sub {
	case "start":
		from := c.fs.String("from", "", "first received day: YYYY-MM-DD (UTC) or the key's day in Unix ms")
		to := c.fs.String("to", "", "last received day, included (same forms)")
		overwrite := c.fs.Bool("overwrite", false, "replace keys that exist (by default they are skipped)")
		detach := c.fs.Bool("detach", false, "print the replay and return instead of following it")
		api, err := c.parse(args, 0, "s3dest replay --destination ID --from DAY --to DAY [--overwrite] [--detach]")
		if err != nil {
			return err
		}
		if *destination == "" {
			return errors.New("replay: --destination is required\n" + replayUsage)
		}
		body := map[string]any{"from": *from, "to": *to, "overwrite": *overwrite}
		if raw, err = api.call(ctx, http.MethodPost, "/destinations/"+url.PathEscape(*destination)+"/replays", body, &got); err != nil {
			return err
		}
		follow = !*detach
		if follow && !*c.json {
			fmt.Fprintf(out, "replay %s of destination %s started: days %s to %s, overwrite %s; Ctrl-C stops following, not the replay\n",
				got.Replay.ID, *destination, dayOf(got.Replay.FromDayMs), dayOf(got.Replay.ToDayMs), yesNo(got.Replay.Overwrite))
		}
		return followReplay(ctx, api, c, got.Replay, raw, follow, out)
	case "status", "cancel", "resume":
		var followFlag *bool
		if sub == "status" {
			followFlag = c.fs.Bool("follow", false, "follow the replay until it ends")
		}
		api, err := c.parse(args, 1, "s3dest replay "+sub+" ID [--destination ID]")
		if err != nil {
			return err
		}
		dest := *destination
		if dest == "" {
			if dest, err = findReplay(ctx, api, c.arg(0)); err != nil {
				return err
			}
		}
		path := "/destinations/" + url.PathEscape(dest) + "/replays/" + url.PathEscape(c.arg(0))
		method := http.MethodGet
		if sub != "status" {
			method, path = http.MethodPost, path+"/"+sub
		}
		if raw, err = api.call(ctx, method, path, nil, &got); err != nil {
			return err
		}
		follow = followFlag != nil && *followFlag
		return followReplay(ctx, api, c, got.Replay, raw, follow, out)
	case "list":
		api, err := c.parse(args, 0, "s3dest replay list --destination ID")
		if err != nil {
			return err
		}
		if *destination == "" {
			return errors.New("replay list: --destination is required")
		}
		var list struct {
			Replays []apiReplay `json:"replays"`
		}
		if raw, err = api.call(ctx, http.MethodGet, "/destinations/"+url.PathEscape(*destination)+"/replays", nil, &list); err != nil {
			return err
		}
		if *c.json {
			return printJSON(out, raw)
		}
		var rows [][]string
		for _, r := range list.Replays {
			rows = append(rows, []string{r.ID, r.state(), dayOf(r.FromDayMs), dayOf(r.ToDayMs), yesNo(r.Overwrite),
				fmt.Sprintf("%d/%s", r.filesDone(), r.Progress.FilesTotal), r.Progress.FilesWritten, r.Progress.FilesSkipped, r.Progress.FilesReplaced})
		}
		return table(out, []string{"REPLAY", "STATE", "FROM", "TO", "OVERWRITE", "FILES", "WRITTEN", "SKIPPED", "REPLACED"}, rows)
	case "help", "-h", "--help":
		fmt.Fprint(out, replayUsage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", sub, replayUsage)
}

// followReplay prints the replay, and while follow, reads it again every replayFollowInterval and prints
// each change of its progress until it ends. A replay that ends cancelled or failed is an error. ctx
// ending (Ctrl-C) stops following, not the replay.
func followReplay(ctx context.Context, api *apiClient, c *command, r apiReplay, raw json.RawMessage, follow bool, out io.Writer) error {
	if !follow {
		if *c.json {
			return printJSON(out, raw)
		}
		_, err := fmt.Fprintln(out, r.line())
		return err
	}
	last := ""
	t := time.NewTicker(replayFollowInterval)
	defer t.Stop()
	for {
		if line := r.line(); line != last && !*c.json {
			fmt.Fprintln(out, line)
			last = line
		}
		if !r.running() {
			if *c.json {
				if err := printJSON(out, raw); err != nil {
					return err
				}
			}
			if s := r.state(); s != "done" {
				return fmt.Errorf("replay %s ended %s: %s", r.ID, s, orDash(r.LastError))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "stopped following; replay %s goes on: \"s3dest replay status %s --follow\" follows it, \"s3dest replay cancel %s\" stops it\n", r.ID, r.ID, r.ID)
			return nil
		case <-t.C:
		}
		var got struct {
			Replay apiReplay `json:"replay"`
		}
		var err error
		if raw, err = api.call(ctx, http.MethodGet, "/destinations/"+url.PathEscape(r.DestinationID)+"/replays/"+url.PathEscape(r.ID), nil, &got); err != nil {
			if ctx.Err() != nil {
				continue // Ctrl-C during the call: the select above says so
			}
			return err
		}
		r = got.Replay
	}
}

// findReplay is the destination of replay id, looked up among every destination's replays.
func findReplay(ctx context.Context, api *apiClient, id string) (string, error) {
	all, err := api.listDestinations(ctx, url.Values{})
	if err != nil {
		return "", err
	}
	for _, d := range all {
		var list struct {
			Replays []apiReplay `json:"replays"`
		}
		if _, err := api.call(ctx, http.MethodGet, "/destinations/"+url.PathEscape(d.ID)+"/replays", nil, &list); err != nil {
			return "", err
		}
		for _, r := range list.Replays {
			if r.ID == id {
				return d.ID, nil
			}
		}
	}
	return "", fmt.Errorf("replay %s: no destination has a replay with this ID", id)
}
