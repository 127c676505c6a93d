package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/s3dest/s3dest/pkg/configstore"
	adminv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/admin/v1"
	configv1 "github.com/s3dest/s3dest/pkg/gen/s3dest/config/v1"
	"github.com/s3dest/s3dest/pkg/layout"
	"github.com/s3dest/s3dest/pkg/testenv"
)

// adminReplicas starts n admin Servers on one embedded JetStream server, each with its own NATS
// connection, config store and view, as n admin processes of a deployment are.
func adminReplicas(t *testing.T, n int) []*Server {
	t.Helper()
	ns, _, _ := testenv.NATS(t)
	var out []*Server
	for range n {
		nc, err := nats.Connect(ns.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		store, err := configstore.Own(t.Context(), js, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := EnsureWorkspace(t.Context(), store, "ws-replicas-test"); err != nil {
			t.Fatal(err)
		}
		view, err := store.Watch(t.Context(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, NewServer(store, view, nil, nil, slog.New(slog.DiscardHandler), WithPrincipal(principal)))
	}
	return out
}

// atOnce runs each f in its own goroutine, released together, and returns their errors in order.
func atOnce(fs ...func() error) []error {
	errs := make([]error, len(fs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Go(func() {
			<-start
			errs[i] = f()
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func newSource(t *testing.T, s *Server, slug string) string {
	t.Helper()
	out, err := s.CreateSource(t.Context(), &adminv1.CreateSourceRequest{Slug: slug})
	if err != nil {
		t.Fatal(err)
	}
	return out.GetData().GetSource().GetId()
}

func awsS3Request(sourceID, bucket string) *adminv1.CreateDestinationRequest {
	return &adminv1.CreateDestinationRequest{SourceId: sourceID, MetadataId: layout.AWSS3MetadataID,
		Settings: &configv1.DestinationSettings{Region: "us-east-1", S3Bucket: bucket, IamRoleArn: "arn:aws:iam::123456789012:role/r"}}
}

func createAWSS3(s *Server, ctx context.Context, sourceID, bucket string) error {
	_, err := s.CreateDestination(ctx, awsS3Request(sourceID, bucket))
	return err
}

// awsS3Of lists the AWS S3 destinations of a source, as stored.
func awsS3Of(t *testing.T, s *Server, sourceID string) []string {
	t.Helper()
	all, err := s.store.Destinations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range all {
		if d.GetSourceId() == sourceID && d.GetMetadata().GetId() == layout.AWSS3MetadataID {
			ids = append(ids, d.GetId())
		}
	}
	return ids
}

func isMultipleAWSS3(err error) bool {
	return status.Code(err) == codes.InvalidArgument && status.Convert(err).Message() == "Multiple instance of AWS S3 are not allowed for this source"
}

// Two admin replicas creating an AWS S3 destination for the same source at the same moment: in every
// round exactly one wins, and the other is told the rule, whichever replica is faster.
func TestOneAWSS3DestinationPerSourceHoldsAcrossTwoAdminReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an embedded JetStream server: skipped under -short")
	}
	r := adminReplicas(t, 2)
	ctx := t.Context()
	for round := range 60 {
		src := newSource(t, r[round%2], fmt.Sprintf("race-%d", round))
		errs := atOnce(
			func() error { return createAWSS3(r[0], ctx, src, "bucket-a") },
			func() error { return createAWSS3(r[1], ctx, src, "bucket-b") },
		)
		won := slices.IndexFunc(errs, func(err error) bool { return err == nil })
		lost := slices.IndexFunc(errs, isMultipleAWSS3)
		if won < 0 || lost < 0 {
			t.Fatalf("round %d: the two creations answered %v, want one success and one %q", round, errs, "Multiple instance of AWS S3 are not allowed for this source")
		}
		if ids := awsS3Of(t, r[0], src); len(ids) != 1 {
			t.Fatalf("round %d: source %s has AWS S3 destinations %v, want exactly one", round, src, ids)
		}
	}

	// Deleting the one releases the rule, on either replica.
	src := newSource(t, r[0], "released")
	if err := createAWSS3(r[0], ctx, src, "bucket-a"); err != nil {
		t.Fatal(err)
	}
	id := awsS3Of(t, r[0], src)[0]
	if _, err := r[1].DeleteDestination(ctx, &adminv1.DeleteDestinationRequest{DestinationId: id}); err != nil {
		t.Fatal(err)
	}
	if err := createAWSS3(r[0], ctx, src, "bucket-c"); err != nil {
		t.Fatalf("after deleting the source's AWS S3 destination, a new one is refused: %v", err)
	}
}

// A process that died between taking a source's claim and storing its destination leaves a claim that
// names no destination: it blocks only for the grace, then a creation takes it over. A creator that
// stalled past the grace and lost its claim cannot store its destination. A destination stored before
// claims existed holds the rule too.
func TestAClaimLeftByADeadAdminIsTakenOverAndItsStalledCreatorFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an embedded JetStream server: skipped under -short")
	}
	s := adminReplicas(t, 1)[0]
	ctx := t.Context()
	src := newSource(t, s, "orphan")
	key := configstore.ClaimKey(awsS3Rule, src)
	deadRev, err := s.store.TakeClaim(ctx, key, "died-before-storing")
	if err != nil {
		t.Fatal(err)
	}
	if err := createAWSS3(s, ctx, src, "bucket-a"); !isMultipleAWSS3(err) {
		t.Fatalf("a creation while the claim is younger than the grace answered %v, want the rule", err)
	}
	s.claimGrace = 0 // the claim is now older than the grace
	if err := createAWSS3(s, ctx, src, "bucket-a"); err != nil {
		t.Fatalf("a creation after the grace answered %v, want it to take the claim over", err)
	}
	ids := awsS3Of(t, s, src)
	c, err := s.store.ClaimOf(ctx, key)
	if err != nil || len(ids) != 1 || c.Holder != ids[0] {
		t.Fatalf("claim %+v (%v), destinations %v: want the claim to name the one destination", c, err, ids)
	}

	// The creator that took the claim first wakes up and stores its destination: refused.
	stalled := &configv1.Destination{Id: "stalled-creator", SourceId: src, Name: "late",
		Metadata: &configv1.DestinationMetadata{Id: layout.AWSS3MetadataID}, CreatedAt: timestamppb.Now()}
	if err := s.store.PutDestinationUnderClaim(ctx, stalled, key, deadRev); !errors.Is(err, configstore.ErrConflict) {
		t.Fatalf("the stalled creator's write answered %v, want ErrConflict", err)
	}
	if ids := awsS3Of(t, s, src); len(ids) != 1 {
		t.Fatalf("source has AWS S3 destinations %v after the stalled write, want one", ids)
	}

	// A source whose AWS S3 destination was stored without a claim (before claims existed).
	old := newSource(t, s, "from-before-claims")
	legacy := &configv1.Destination{Id: "stored-before-claims", SourceId: old, Name: "old", Enabled: true,
		Metadata: &configv1.DestinationMetadata{Id: layout.AWSS3MetadataID}, CreatedAt: timestamppb.Now()}
	if err := s.store.PutDestination(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if err := createAWSS3(s, ctx, old, "bucket-b"); !isMultipleAWSS3(err) {
		t.Fatalf("a second AWS S3 destination next to one from before claims answered %v, want the rule", err)
	}
	if c, err := s.store.ClaimOf(ctx, configstore.ClaimKey(awsS3Rule, old)); err != nil || c.Holder != legacy.GetId() {
		t.Fatalf("claim %+v (%v), want it handed to %s", c, err, legacy.GetId())
	}
}

// Write keys created on two admin replicas at once are all kept: each replica's change is applied to
// what the other stored, never over it.
func TestWriteKeysCreatedOnTwoReplicasAtOnceAreAllKept(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an embedded JetStream server: skipped under -short")
	}
	r := adminReplicas(t, 2)
	ctx := t.Context()
	src := newSource(t, r[0], "keys")
	const each = 15
	var mu sync.Mutex
	var made []string
	create := func(s *Server) func() error {
		return func() error {
			for range each {
				out, err := s.CreateWriteKey(ctx, &adminv1.CreateWriteKeyRequest{SourceId: src})
				if err != nil {
					return err
				}
				mu.Lock()
				made = append(made, out.GetData().GetWriteKey())
				mu.Unlock()
			}
			return nil
		}
	}
	if err := errors.Join(atOnce(create(r[0]), create(r[1]))...); err != nil {
		t.Fatal(err)
	}
	stored, err := r[1].store.Source(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range made {
		if !slices.Contains(stored.GetWriteKeys(), k) {
			t.Errorf("write key %s… was returned to its caller but is not stored", k[:4])
		}
	}
	if n := len(stored.GetWriteKeys()); n != 2*each+1 {
		t.Errorf("source has %d write keys, want %d", n, 2*each+1)
	}
}

// A source deleted on one replica while another creates a destination for it: either the deletion is
// refused (the destination exists) or the creation is (the source does not); never a destination of a
// deleted source.
func TestASourceIsNeverDeletedUnderADestinationCreatedOnAnotherReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an embedded JetStream server: skipped under -short")
	}
	r := adminReplicas(t, 2)
	ctx := t.Context()
	outcomes := map[string]int{}
	for round := range 40 {
		src := newSource(t, r[0], fmt.Sprintf("delete-race-%d", round))
		errs := atOnce(
			func() error {
				_, err := r[0].DeleteSource(ctx, &adminv1.DeleteSourceRequest{SourceId: src})
				return err
			},
			func() error { return createAWSS3(r[1], ctx, src, "bucket-a") },
		)
		_, srcErr := r[0].store.Source(ctx, src)
		ids := awsS3Of(t, r[0], src)
		switch {
		case errs[0] == nil && status.Code(errs[1]) == codes.NotFound && errors.Is(srcErr, configstore.ErrNotFound) && len(ids) == 0:
			outcomes["source deleted, creation refused"]++
		case status.Code(errs[0]) == codes.FailedPrecondition && errs[1] == nil && srcErr == nil && len(ids) == 1:
			outcomes["deletion refused, destination created"]++
		default:
			t.Fatalf("round %d: delete answered %v, create %v; source: %v, its destinations %v", round, errs[0], errs[1], srcErr, ids)
		}
		if len(ids) == 1 {
			if _, err := r[1].DeleteDestination(ctx, &adminv1.DeleteDestinationRequest{DestinationId: ids[0]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("outcomes: %v", outcomes)
}
