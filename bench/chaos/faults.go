package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// faultKind is what a fault proxy stands in front of, and so how it fails when told to.
type faultKind int

const (
	// s3Kind answers, while failing, 503 SlowDown and 500 InternalError in turn, as S3 does when it
	// throttles or breaks: XML errors the SDK reads and retries.
	s3Kind faultKind = iota
	// stsKind answers, while failing, 403 AccessDenied to every AssumeRole: STS refusing.
	stsKind
)

// faultProxy is an HTTP reverse proxy in front of S3 or STS (MinIO, the STS gate) that passes every
// request on, or while failing answers with the error of its kind instead. toxiproxy works at TCP level
// and cannot answer an HTTP 5xx, so this is the tool for S3 and STS errors. The Host header is passed
// on as the client sent it: the SigV4 signature covers it.
type faultProxy struct {
	kind    faultKind
	port    int
	srv     *http.Server
	failing atomic.Bool
	n       atomic.Int64 // requests answered with an error
}

func startFaultProxy(kind faultKind, upstream string) (*faultProxy, error) {
	target, err := url.Parse("http://" + upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &faultProxy{kind: kind, port: ln.Addr().(*net.TCPAddr).Port}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
	}, ErrorLog: log.New(io.Discard, "", 0)} // the upstream down (a killed MinIO) is a 502 the client retries

	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.failing.Load() {
			rp.ServeHTTP(w, r)
			return
		}
		n := p.n.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		switch {
		case p.kind == stsKind:
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>`+
				`<Code>AccessDenied</Code><Message>chaos: STS refuses every AssumeRole</Message></Error><RequestId>chaos</RequestId></ErrorResponse>`)
		case n%2 == 0:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>chaos</RequestId></Error>`)
		default:
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message><RequestId>chaos</RequestId></Error>`)
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *faultProxy) close() { _ = p.srv.Close() }

// scrape sums the samples of one metric in a Prometheus text exposition.
func scrape(ctx context.Context, metricsURL, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", metricsURL, resp.Status)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("%s: no metric %s", metricsURL, name)
	}
	return sum, sc.Err()
}
