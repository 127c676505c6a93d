package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	analytics "github.com/segmentio/analytics-go/v3"
	"google.golang.org/protobuf/proto"

	"github.com/s3dest/s3dest/pkg/bus"
	batchv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/batch/v1"
)

// load sends track events at a steady rate through Segment's Go client, one client per ingest
// replica, events dealt to them in turn. Every event's messageId is `{scenario}-{n}`, unique in the run,
// and its properties name the scenario; the client's callback records which ones were answered 2xx.
type load struct {
	rate    int
	clients []analytics.Client
	tag     atomic.Pointer[string]
	stop    chan struct{}
	done    chan struct{}

	mu       sync.Mutex
	accepted map[string]bool // messageId → answered 2xx
	sent     map[string]int  // scenario → events enqueued
	failed   map[string]int  // scenario → events the client gave up on
	total    atomic.Int64    // events accepted so far
}

func scenarioOf(messageID string) string {
	if i := strings.LastIndexByte(messageID, '-'); i > 0 {
		return messageID[:i]
	}
	return ""
}

// Success and Failure are the client's callback, called from its goroutines.
func (l *load) Success(m analytics.Message) {
	t, ok := m.(analytics.Track)
	if !ok {
		return
	}
	l.mu.Lock()
	if !l.accepted[t.MessageId] {
		l.accepted[t.MessageId] = true
		l.total.Add(1)
	}
	l.mu.Unlock()
}

func (l *load) Failure(m analytics.Message, _ error) {
	if t, ok := m.(analytics.Track); ok {
		l.mu.Lock()
		l.failed[scenarioOf(t.MessageId)]++
		l.mu.Unlock()
	}
}

// quietLogger keeps the client's retry messages (many, under faults) out of the suite's output.
type quietLogger struct{}

func (quietLogger) Logf(string, ...any)   {}
func (quietLogger) Errorf(string, ...any) {}

func startLoad(sum summary, rate int, tag string) (*load, error) {
	l := &load{rate: rate, stop: make(chan struct{}), done: make(chan struct{}),
		accepted: map[string]bool{}, sent: map[string]int{}, failed: map[string]int{}}
	l.tag.Store(&tag)
	for _, u := range sum.TrackingURLs {
		transport := &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			ResponseHeaderTimeout: 30 * time.Second, MaxIdleConnsPerHost: 8}
		c, err := analytics.NewWithConfig(sum.WriteKey, analytics.Config{Endpoint: u, BatchSize: 50,
			Interval: 200 * time.Millisecond, Transport: transport, Callback: l, Logger: quietLogger{}})
		if err != nil {
			return nil, err
		}
		l.clients = append(l.clients, c)
	}
	go l.run()
	return l, nil
}

// run enqueues rate events a second, in ticks of 50 ms, until stop.
func (l *load) run() {
	defer close(l.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	began := time.Now()
	n := 0
	for {
		select {
		case <-l.stop:
			return
		case now := <-tick.C:
			due := int(now.Sub(began).Seconds() * float64(l.rate))
			for ; n < due; n++ {
				tag := *l.tag.Load()
				l.mu.Lock()
				l.sent[tag]++
				l.mu.Unlock()
				_ = l.clients[n%len(l.clients)].Enqueue(analytics.Track{MessageId: tag + "-" + strconv.Itoa(n),
					UserId: "chaos-user-" + strconv.Itoa(n%97), Event: "Chaos Event",
					Properties: analytics.NewProperties().Set("scenario", tag).Set("n", n)})
			}
		}
	}
}

// close stops sending and flushes what the clients hold (they retry for up to ~30 s).
func (l *load) close() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	var wg sync.WaitGroup
	for _, c := range l.clients {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Close() }()
	}
	wg.Wait()
}

// deliveries counts delivered events as the copiers announce them: BatchDelivered on
// batch.delivered.<destinationId> (stream BATCHES), read by an ordered consumer, which survives the
// loss of a NATS node by starting again after the last message it saw.
type deliveries struct {
	total atomic.Int64
	stop  func()
}

func watchDeliveries(ctx context.Context, js jetstream.JetStream, destinationID string) (*deliveries, error) {
	cons, err := js.OrderedConsumer(ctx, bus.StreamBatches, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.DeliveredSubject(destinationID)}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", bus.DeliveredSubject(destinationID), err)
	}
	d := &deliveries{}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var bd batchv1.BatchDelivered
		if proto.Unmarshal(msg.Data(), &bd) == nil {
			d.total.Add(bd.GetBatch().GetEventCount())
		}
	})
	if err != nil {
		return nil, err
	}
	d.stop = cc.Stop
	return d, nil
}
