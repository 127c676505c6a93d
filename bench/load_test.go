package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSteadySendsTheRateItIsAskedFor(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"success":true}`)) }))
	defer srv.Close()
	log, err := newSender(srv.URL, "k", 16, newPaddedPayloads()).steady(context.Background(), "x", 2000, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := log.accepted(); n < 1800 || n > 2100 {
		t.Fatalf("accepted %d events in 1s at 2000/s", n)
	}
}

func TestEveryIDParsesBackToItsRequest(t *testing.T) {
	for _, c := range []struct{ s, r, i int }{{0, 0, 0}, {7, 12345, 99}} {
		ph, s, r, i, ok := parseID(appendID(nil, "aioT", c.s, c.r, c.i))
		if !ok || ph != "aioT" || s != c.s || r != c.r || i != c.i {
			t.Fatalf("%v: got %s %d %d %d %v", c, ph, s, r, i, ok)
		}
	}
}
