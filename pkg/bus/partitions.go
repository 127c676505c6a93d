package bus

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxPartitions bounds the partitions setting: far past what a cluster of stream leaders needs
// (docs/scaling.md), low enough that a typo cannot create thousands of streams.
const MaxPartitions = 256

// Partitions is how many EVENTS streams the sources' events are split over (DESIGN.md §8), a deploy-time
// setting that every service must share. With 1, the default, there is one stream EVENTS on the
// subjects events.<sourceId>, as before partitions existed. With N > 1 there are the streams
// EVENTS-0 … EVENTS-{N-1}, and a source's events go to events.<p>.<sourceId> in EVENTS-<p>, where p is
// Of(sourceId). A source always maps to one partition, so its order, its batcher's fence and its cursor
// (sequences of that one stream) hold as with one stream.
//
// p is exactly what a NATS server's subject mapping computes for
// events.* → events.{{partition(N,1)}}.{{wildcard(1)}}: FNV-1a 32 of the source ID, modulo N
// (nats-server's subject_transform.go; TestPartitionsAreWhatTheServersSubjectMappingComputes holds
// the two together). Ingest, the only writer of EVENTS, computes it rather than leaving it to a mapping
// in every server's configuration: the batcher must know each source's stream anyway to read it, and
// N then lives in one place, the services' setting, checked against the streams that exist
// (CheckPartitions), where a server mapping out of step with it would strand events unseen.
// docs/scaling.md says more.
type Partitions int

// Validate checks the setting's rule.
func (n Partitions) Validate() error {
	if n < 1 || n > MaxPartitions {
		return fmt.Errorf("partitions: must be between 1 and %d, got %d", MaxPartitions, int(n))
	}
	return nil
}

// count is n, with the zero value standing for one partition.
func (n Partitions) count() uint32 { return uint32(max(n, 1)) }

// Of returns the partition of a source: FNV-1a 32 of its ID, modulo n.
func (n Partitions) Of(sourceID string) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(sourceID); i++ {
		h ^= uint32(sourceID[i])
		h *= 16777619
	}
	return int(h % n.count())
}

// Stream names the EVENTS stream of partition p.
func (n Partitions) Stream(p int) string {
	if n <= 1 {
		return StreamEvents
	}
	return StreamEvents + "-" + strconv.Itoa(p)
}

// StreamOf names the EVENTS stream that holds a source's events.
func (n Partitions) StreamOf(sourceID string) string { return n.Stream(n.Of(sourceID)) }

// Streams names every EVENTS stream, in partition order.
func (n Partitions) Streams() []string {
	names := make([]string, n.count())
	for p := range names {
		names[p] = n.Stream(p)
	}
	return names
}

// Subject is the subject a source's events are published on.
func (n Partitions) Subject(sourceID string) string {
	if n <= 1 {
		return eventsPrefix + sourceID
	}
	return eventsPrefix + strconv.Itoa(n.Of(sourceID)) + "." + sourceID
}

// Wildcard is the subjects of partition p's stream.
func (n Partitions) Wildcard(p int) string {
	if n <= 1 {
		return eventsPrefix + "*"
	}
	return eventsPrefix + strconv.Itoa(p) + ".*"
}

// isEventsStream reports whether a stream name is EVENTS or one of its partitions.
func isEventsStream(name string) bool {
	return name == StreamEvents || strings.HasPrefix(name, StreamEvents+"-")
}

// partitionsMetadata is the key of an EVENTS stream's metadata that records the partitions it was
// created for. EVENTS of before partitions has none: it was made for 1.
const partitionsMetadata = "s3dest-partitions"

// metadata is what EnsureStreams stores with each EVENTS stream.
func (n Partitions) metadata() map[string]string {
	return map[string]string{partitionsMetadata: strconv.Itoa(int(n.count()))}
}

// CheckPartitions refuses a partitions setting that does not match the EVENTS streams on the server:
// a service with another N would publish where no batcher reads, or read where nobody publishes. The
// streams that exist are the truth (the first services to start create them, each recording the
// setting in its metadata): any EVENTS stream that is not one of n's, or was created for another
// setting, is refused. None at all, or some of n's (another service may be creating them right now),
// is a match.
func CheckPartitions(ctx context.Context, js jetstream.JetStream, n Partitions) error {
	var found, made []string
	ok := true
	// The first JetStream call of a service that starts with its cluster: it waits out the meta
	// leader's election for up to two minutes (each try times out after the client's 5 s).
	err := againForAWhile(ctx, 2*time.Minute, func() error {
		found, made, ok = nil, nil, true
		list := js.ListStreams(ctx)
		for info := range list.Info() {
			name := info.Config.Name
			if !isEventsStream(name) {
				continue
			}
			setting := cmp.Or(info.Config.Metadata[partitionsMetadata], "1")
			found = append(found, name)
			if !slices.Contains(made, setting) {
				made = append(made, setting)
			}
			ok = ok && setting == n.metadata()[partitionsMetadata] && slices.Contains(n.Streams(), name)
		}
		return list.Err()
	})
	if err != nil {
		return fmt.Errorf("list the EVENTS streams: %w", err)
	}
	if ok {
		return nil
	}
	slices.Sort(found)
	slices.Sort(made)
	return fmt.Errorf("partitions: this service is set to %d (flag --partitions, env S3DEST_PARTITIONS), but the server holds the EVENTS streams %s, created for partitions %s; every service must run with the same partitions (changing it needs EVENTS drained first, docs/scaling.md)",
		int(n.count()), strings.Join(found, ", "), strings.Join(made, " and "))
}

// SpreadLeaders asks the cluster to move the leader of each EVENTS partition to the node the partition
// is meant for, the p-th (modulo) of its stream's peers sorted by name, so that with N partitions on
// N nodes every node leads one: the cluster itself picks leaders at random (nats-server's
// setPreferredMember), which puts all three of three on one node one time in nine. It changes nothing
// for one partition or one replica, nor for a partition whose leader is already its node, so every
// replica of every service may call it at start and they agree; a step-down pauses that stream's
// publishes for about an election. It returns the leaders it found, by stream, and what went wrong
// with a step-down (a node that is down keeps its partitions led elsewhere until a later call).
func SpreadLeaders(ctx context.Context, js jetstream.JetStream, n Partitions) (map[string]string, error) {
	leaders := map[string]string{}
	var errs []error
	for p, name := range n.Streams() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return leaders, fmt.Errorf("spread leaders: open stream %s: %w", name, err)
		}
		ci := s.CachedInfo().Cluster
		if ci == nil || len(ci.Replicas) == 0 {
			continue // one replica: nothing to move
		}
		if ci.Leader == "" {
			errs = append(errs, fmt.Errorf("spread leaders: %s has no leader yet", name))
			continue
		}
		leaders[name] = ci.Leader
		if n <= 1 {
			continue
		}
		peers := []string{ci.Leader}
		for _, r := range ci.Replicas {
			peers = append(peers, r.Name)
		}
		slices.Sort(peers)
		target := peers[p%len(peers)]
		if ci.Leader == target {
			continue
		}
		req, err := json.Marshal(map[string]any{"placement": map[string]string{"preferred": target}})
		if err != nil {
			return leaders, err
		}
		msg, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+name, req)
		if err != nil {
			errs = append(errs, fmt.Errorf("move the leader of %s to %s: %w", name, target, err))
			continue
		}
		var resp struct {
			Success bool `json:"success"`
			Error   *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil || !resp.Success {
			why := "no success"
			if resp.Error != nil {
				why = resp.Error.Description
			}
			errs = append(errs, fmt.Errorf("move the leader of %s to %s: %s", name, target, why))
			continue
		}
		leaders[name] = target
	}
	return leaders, errors.Join(errs...)
}

// againForAWhile is AgainOnTimeout for up to d rather than 5 tries.
func againForAWhile(ctx context.Context, d time.Duration, call func() error) error {
	until := time.Now().Add(d)
	for {
		err := call()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || time.Now().After(until) {
			return err
		}
	}
}
