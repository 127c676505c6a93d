package platform

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkAcknowledgedPublishR1 is what an R1 stream's durability costs: one publisher, each 1 KiB
// message awaiting its acknowledgement, on file storage with JetStream's default fsync (every 2
// minutes) and with sync_interval: always (--sync-always), where each acknowledgement waits for an
// fsync. README.md's durability table quotes it.
func BenchmarkAcknowledgedPublishR1(b *testing.B) {
	for _, always := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync_always=%t", always), func(b *testing.B) {
			ns, err := StartNATS("127.0.0.1:0", b.TempDir(), always)
			if err != nil {
				b.Fatal(err)
			}
			defer ns.Stop()
			nc, err := nats.Connect(ns.URL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench"}, Storage: jetstream.FileStorage, Replicas: 1}); err != nil {
				b.Fatal(err)
			}
			msg := make([]byte, 1024)
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			for range b.N {
				if _, err := js.Publish(ctx, "bench", msg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "acks/s")
		})
	}
}
