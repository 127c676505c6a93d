// Package service is the lifecycle every s3dest service follows, in a binary of its own or inside
// `s3dest dev`: New validates and does no I/O, Start does what must fail fast (streams, consumers,
// listeners), Run blocks until its context ends, drains what is in flight and returns nil on a clean stop.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Service is one unit of work that s3dest runs.
type Service interface {
	// Name identifies the service in logs and metrics.
	Name() string
	// Start prepares everything that must fail fast. It must not block.
	Start(ctx context.Context) error
	// Run blocks until ctx ends, then stops taking work, drains what is in flight and returns nil.
	// An error means the service failed and the process should stop.
	Run(ctx context.Context) error
}

// Group runs services in pipeline order. It starts them first to last, and stops them first to last
// too, waiting for each to drain before stopping the next: ingest stops accepting before the batcher
// flushes, and the batcher's last files are sealed before the stager stops.
type Group struct {
	log      *slog.Logger
	services []Service
	ready    atomic.Bool
}

// NewGroup returns a group of services, in pipeline order.
func NewGroup(log *slog.Logger, services ...Service) *Group {
	return &Group{log: log, services: services}
}

// Ready reports whether every service has started and none has stopped.
func (g *Group) Ready() bool { return g.ready.Load() }

// Run starts every service, runs them until ctx ends or one fails, then stops them in order.
// It returns the first failure, or nil after a clean stop.
func (g *Group) Run(ctx context.Context) error {
	for i, s := range g.services {
		if err := s.Start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", s.Name(), err)
		}
		g.log.Info("service started", "service", s.Name(), "position", i)
	}

	type running struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var (
		failOnce sync.Once
		failure  error
		failed   = make(chan struct{})
		runs     = make([]running, len(g.services))
	)
	for i, s := range g.services {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		runs[i] = running{cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(runs[i].done)
			err := s.Run(sctx)
			if err == nil && sctx.Err() == nil {
				err = errors.New("stopped on its own")
			}
			if err != nil {
				failOnce.Do(func() {
					failure = fmt.Errorf("%s: %w", s.Name(), err)
					close(failed)
				})
			}
		}()
	}
	g.ready.Store(true)

	select {
	case <-ctx.Done():
		g.log.Info("stopping", "reason", context.Cause(ctx))
	case <-failed:
		g.log.Error("a service failed; stopping the others", "error", failure)
	}
	g.ready.Store(false)
	for i, r := range runs {
		r.cancel()
		<-r.done
		g.log.Info("service stopped", "service", g.services[i].Name())
	}
	return failure
}
