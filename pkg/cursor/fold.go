package cursor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
)

// A destination's delivery status (its Delivered cursors) is a fold of its history in JetStream: the
// batch.delivered.<destinationId> and batch.failed.<destinationId> messages of stream BATCHES, in stream
// order. JetStream is the truth; Redis holds the fold's result and how far it got (the stream sequence
// of the last message folded, with a generation), so a status read folds only what is new, and a Redis
// that lost the position (FLUSHALL, a restart of a Redis without persistence, s3dest dev's in-memory one)
// is folded again from the start of the stream. What the stream no longer holds (older than its max age,
// the retention + bus.RetentionMargin) cannot be rebuilt: those days vanish with Redis.
//
// Several folders (the copiers and admin replicas) may fold one destination at once: each message
// is applied by one Lua step that first checks, and then moves, the position, so a message is applied
// once and in stream order whoever folds it. A delivered or dead-lettered file is counted once even
// if its message was published twice (a redelivery after the duplicate window): a marker per file,
// named with the generation, remembers it.

// Folder folds destinations' delivery history into their Delivered cursors.
type Folder struct {
	store *Store
	js    jetstream.JetStream

	mu sync.Mutex
	// folding holds the destinations a CatchUp of this Folder is folding; again[d] asks it to fold once
	// more when it is done, so concurrent callers of one process coalesce into one consumer.
	folding map[string]bool
	again   map[string]bool
}

// NewFolder returns a folder that writes into store's cursors from js's BATCHES stream.
func NewFolder(store *Store, js jetstream.JetStream) *Folder {
	return &Folder{store: store, js: js, folding: map[string]bool{}, again: map[string]bool{}}
}

func positionKey(destinationID string) string { return "s3dest:status:position:" + destinationID }

// foldBatch is how many messages one Redis round trip applies.
const foldBatch = 256

// CatchUp folds destination d's messages that the cursors do not hold yet, and returns once they do
// (or, when another caller of this Folder is folding d, once that caller was asked to fold again).
func (f *Folder) CatchUp(ctx context.Context, d string) error {
	f.mu.Lock()
	if f.folding[d] {
		f.again[d] = true
		f.mu.Unlock()
		return nil
	}
	f.folding[d] = true
	f.mu.Unlock()
	for {
		err := f.fold(ctx, d)
		f.mu.Lock()
		if err != nil || !f.again[d] {
			delete(f.folding, d)
			delete(f.again, d)
			f.mu.Unlock()
			return err
		}
		delete(f.again, d)
		f.mu.Unlock()
	}
}

// start reads the fold's position for d, and starts a new generation when Redis has none: every day
// of d cached without a position (a partial loss) is deleted first, since the fold counts it again.
var start = redis.NewScript(`
local pos = redis.call('HMGET', KEYS[1], 'seq', 'gen')
if pos[2] then return {pos[1], pos[2]} end
for _, day in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do redis.call('DEL', ARGV[2] .. day) end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'seq', 0, 'gen', ARGV[1])
return {'0', ARGV[1]}
`)

// apply folds one message (ARGV[3]: d delivered, f failed, x dead-lettered) into its day, if it is the
// next one of the position's generation; 1 applied, 0 already applied, -1 another generation started.
const apply = `
local pos = redis.call('HMGET', KEYS[1], 'seq', 'gen')
if pos[2] ~= ARGV[2] then return -1 end
if tonumber(pos[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[1])
local kind, key = ARGV[3], KEYS[2]
if kind == 'd' then
  if redis.call('SET', KEYS[4], 1, 'NX', 'PX', ARGV[10]) then
    redis.call('HINCRBY', key, 'files', 1)
    redis.call('HINCRBY', key, 'events', ARGV[4])
    redis.call('HINCRBY', key, 'bytes', ARGV[5])
    redis.call('HSET', key, 'lastSeq', ARGV[6], 'lastAt', ARGV[7])
    redis.call('HDEL', key, 'lastError', 'errorAt')
  end
elseif kind == 'x' then
  if redis.call('SET', KEYS[4], 1, 'NX', 'PX', ARGV[10]) then
    redis.call('HINCRBY', key, 'deadFiles', 1)
    redis.call('HINCRBY', key, 'deadEvents', ARGV[4])
    redis.call('HSET', key, 'lastError', ARGV[8], 'errorAt', ARGV[7])
  end
else
  redis.call('HSET', key, 'lastError', ARGV[8], 'errorAt', ARGV[7])
end
redis.call('PEXPIRE', key, ARGV[10])
redis.call('ZADD', KEYS[3], ARGV[9], ARGV[9])
redis.call('PEXPIRE', KEYS[3], ARGV[10])
return 1
`

// errNewGeneration stops a fold whose position another folder started again (a flush meanwhile).
var errNewGeneration = errors.New("the status of the destination is being rebuilt by another folder")

func (f *Folder) fold(ctx context.Context, d string) error {
	days := daysKey(Delivered, d)
	pos, err := start.Run(ctx, f.store.rdb, []string{positionKey(d), days}, strconv.FormatInt(time.Now().UnixNano(), 36), dayKeyPrefix(Delivered, d)).StringSlice()
	if err != nil || len(pos) != 2 {
		return fmt.Errorf("read the status position of %s: %v %w", d, pos, err)
	}
	seq, _ := strconv.ParseUint(pos[0], 10, 64)
	gen := pos[1]
	subjects := []string{bus.DeliveredSubject(d), bus.FailedSubject(d)}
	if news, err := f.newer(ctx, subjects, seq); err != nil || !news {
		return err
	}
	// The consumer is ours alone and deleted when done; InactiveThreshold removes one a crash left.
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: 30 * time.Second}
	if seq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
	}
	cons, err := f.js.OrderedConsumer(ctx, bus.StreamBatches, cfg)
	if err != nil {
		return fmt.Errorf("read the delivery history of %s: %w", d, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read the delivery history of %s: %w", d, err)
	}
	// A delete that fails leaves the consumer to its inactive threshold.
	defer func() { _ = f.js.DeleteConsumer(context.WithoutCancel(ctx), bus.StreamBatches, info.Name) }()
	n := info.NumPending
	if n == 0 {
		return nil
	}
	// One iterator over one consumer (see the batcher's dedupe rebuild for why not Next).
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read the delivery history of %s: %w", d, err)
	}
	defer it.Stop()
	for n > 0 {
		pipe := f.store.rdb.Pipeline()
		var cmds []*redis.Cmd
		for ; n > 0 && len(cmds) < foldBatch; n-- {
			m, err := it.Next(jetstream.NextMaxWait(10 * time.Second))
			if err != nil {
				return fmt.Errorf("read the delivery history of %s: %w", d, err)
			}
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read the delivery history of %s: %w", d, err)
			}
			keys, args, ok := f.step(d, gen, m.Subject(), m.Data(), md.Sequence.Stream)
			if !ok {
				continue
			}
			cmds = append(cmds, pipe.Eval(ctx, apply, keys, args...))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("fold the delivery history of %s: %w", d, err)
		}
		for _, c := range cmds {
			if r, _ := c.Int(); r == -1 {
				return errNewGeneration
			}
		}
	}
	return nil
}

// newer reports whether the stream holds a message on one of subjects after sequence seq: two reads of
// a subject's last message, far cheaper than a consumer, so a fold with nothing to do costs little.
func (f *Folder) newer(ctx context.Context, subjects []string, seq uint64) (bool, error) {
	stream, err := f.js.Stream(ctx, bus.StreamBatches)
	if err != nil {
		return false, fmt.Errorf("read the delivery history: %w", err)
	}
	for _, subj := range subjects {
		m, err := stream.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read the delivery history on %s: %w", subj, err)
		}
		if m.Sequence > seq {
			return true, nil
		}
	}
	return false, nil
}

// step is the apply call of one history message; ok is false for a message that is not one (never
// written by s3dest), which the fold skips.
func (f *Folder) step(d, gen, subject string, data []byte, seq uint64) (keys []string, args []any, ok bool) {
	var (
		b             *batchv1.Batch
		kind, message string
		at            time.Time
	)
	if subject == bus.DeliveredSubject(d) {
		var m batchv1.BatchDelivered
		if proto.Unmarshal(data, &m) != nil {
			return nil, nil, false
		}
		b, kind, at = m.GetBatch(), "d", m.GetDeliveredAt().AsTime()
	} else {
		var m batchv1.DeliveryFailed
		if proto.Unmarshal(data, &m) != nil {
			return nil, nil, false
		}
		b, kind, message, at = m.GetBatch(), "f", m.GetMessage(), m.GetFailedAt().AsTime()
		if m.GetDeadLettered() {
			kind = "x"
		}
	}
	marker := "s3dest:status:" + kind + ":" + gen + ":" + d + ":" + b.GetBatchId()
	return []string{positionKey(d), dayKey(Delivered, d, b.GetReceivedDayMs()), daysKey(Delivered, d), marker},
		[]any{seq, gen, kind, b.GetEventCount(), b.GetSizeBytes(), b.GetLastSequence(), at.UnixMilli(), message, b.GetReceivedDayMs(), f.store.ttl.Milliseconds()},
		true
}
