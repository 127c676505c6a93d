package allinone

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

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

// replayResponse is the API's answer about one replay.
type replayResponse struct {
	Replay apiReplay `json:"replay"`
}

func replayCommand(a *app) *cobra.Command {
	var destination, from, to string
	var overwrite, detach bool
	cmd := &cobra.Command{
		Use:   "replay --destination ID --from DAY --to DAY [flags]",
		Short: "deliver a destination's retained days again, exactly once per key",
		Long: `Re-delivers every staged file of the destination's source whose received day is DAY..DAY (both
included; DAY is YYYY-MM-DD in UTC or the key's day in Unix ms) and still in retention. A key that exists
is skipped unless --overwrite replaces it. The copiers do the work at up to half the destination's rate,
so live delivery goes on; the command follows the replay (files, bytes, written, skipped, replaced, ETA)
until it ends, or with --detach prints it and returns.

Ctrl-C while following stops following only: the replay goes on in the copiers; "s3dest replay status
ID --follow" follows it again and "s3dest replay cancel ID" stops it (docs/replay.md).`,
		Example: "  s3dest replay --destination <destinationId> --from 2026-11-01 --to 2026-11-30",
		GroupID: groupManage,
		Args:    unknownSubcommand,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if destination == "" {
				return usageErrorf("%s: --destination is required (usage: %s)", cmd.CommandPath(), cmd.UseLine())
			}
			api, err := a.client(cmd)
			if err != nil {
				return err
			}
			var got replayResponse
			body := map[string]any{"from": from, "to": to, "overwrite": overwrite}
			raw, err := api.call(cmd.Context(), http.MethodPost, "/destinations/"+url.PathEscape(destination)+"/replays", body, &got)
			if err != nil {
				return err
			}
			if !detach && !a.json {
				fmt.Fprintf(a.out, "replay %s of destination %s started: days %s to %s, overwrite %s; Ctrl-C stops following, not the replay\n",
					got.Replay.ID, destination, dayOf(got.Replay.FromDayMs), dayOf(got.Replay.ToDayMs), yesNo(got.Replay.Overwrite))
			}
			return a.followReplay(cmd.Context(), api, got.Replay, raw, !detach)
		},
	}
	f := cmd.Flags()
	f.StringVar(&destination, "destination", "", "the destination's ID")
	f.StringVar(&from, "from", "", "first received day: YYYY-MM-DD (UTC) or the key's day in Unix ms")
	f.StringVar(&to, "to", "", "last received day, included (same forms)")
	f.BoolVar(&overwrite, "overwrite", false, "replace keys that exist (by default they are skipped)")
	f.BoolVar(&detach, "detach", false, "print the replay and return instead of following it")
	cmd.AddCommand(a.replayOne("status", "where a replay stands; --follow follows it until it ends", http.MethodGet),
		a.replayOne("cancel", "stop a replay after the file in flight (resume continues from there)", http.MethodPost),
		a.replayOne("resume", "continue a cancelled or failed replay from where it stopped", http.MethodPost),
		a.replayList())
	return a.addClientFlags(cmd)
}

// replayOne is `replay status|cancel|resume ID`: a GET of the replay, or a POST of the action.
func (a *app) replayOne(name, short, method string) *cobra.Command {
	var destination string
	var follow bool
	cmd := &cobra.Command{
		Use:   name + " <replayId> [flags]",
		Short: short,
		Args:  positional("<replayId>"),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := a.client(cmd)
			if err != nil {
				return err
			}
			dest := destination
			if dest == "" {
				if dest, err = findReplay(cmd.Context(), api, args[0]); err != nil {
					return err
				}
			}
			path := "/destinations/" + url.PathEscape(dest) + "/replays/" + url.PathEscape(args[0])
			if method == http.MethodPost {
				path += "/" + name
			}
			var got replayResponse
			raw, err := api.call(cmd.Context(), method, path, nil, &got)
			if err != nil {
				return err
			}
			return a.followReplay(cmd.Context(), api, got.Replay, raw, follow)
		},
	}
	cmd.Flags().StringVar(&destination, "destination", "", "the replay's destination (saves looking the replay up among every destination's)")
	if name == "status" {
		cmd.Flags().BoolVar(&follow, "follow", false, "follow the replay until it ends")
	}
	return cmd
}

func (a *app) replayList() *cobra.Command {
	var destination string
	cmd := &cobra.Command{
		Use:   "list --destination ID [flags]",
		Short: "a destination's replays, newest first (--json: {\"replays\": [...]})",
		Args:  positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if destination == "" {
				return usageErrorf("%s: --destination is required (usage: %s)", cmd.CommandPath(), cmd.UseLine())
			}
			api, err := a.client(cmd)
			if err != nil {
				return err
			}
			var list struct {
				Replays []apiReplay `json:"replays"`
			}
			raw, err := api.call(cmd.Context(), http.MethodGet, "/destinations/"+url.PathEscape(destination)+"/replays", nil, &list)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.out, raw)
			}
			var rows [][]string
			for _, r := range list.Replays {
				rows = append(rows, []string{r.ID, r.state(), dayOf(r.FromDayMs), dayOf(r.ToDayMs), yesNo(r.Overwrite),
					fmt.Sprintf("%d/%s", r.filesDone(), r.Progress.FilesTotal), r.Progress.FilesWritten, r.Progress.FilesSkipped, r.Progress.FilesReplaced})
			}
			return table(a.out, []string{"REPLAY", "STATE", "FROM", "TO", "OVERWRITE", "FILES", "WRITTEN", "SKIPPED", "REPLACED"}, rows)
		},
	}
	cmd.Flags().StringVar(&destination, "destination", "", "the destination's ID")
	return cmd
}

// followReplay prints the replay, and while follow, reads it again every replayFollowInterval and prints
// each change of its progress until it ends. A replay that ends cancelled or failed is an error. ctx
// ending (Ctrl-C) stops following, not the replay.
func (a *app) followReplay(ctx context.Context, api *apiClient, r apiReplay, raw json.RawMessage, follow bool) error {
	out := a.out
	if !follow {
		if a.json {
			return printJSON(out, raw)
		}
		_, err := fmt.Fprintln(out, r.line())
		return err
	}
	last := ""
	t := time.NewTicker(replayFollowInterval)
	defer t.Stop()
	for {
		if line := r.line(); line != last && !a.json {
			fmt.Fprintln(out, line)
			last = line
		}
		if !r.running() {
			if a.json {
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
