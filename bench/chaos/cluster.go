package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/s3dest/s3dest/pkg/procfile"
)

// summary is what the chaos suite reads of $S3DEST_CLUSTER_DIR/summary.json (DESIGN.md §8).
type summary struct {
	TrackingURLs  []string `json:"trackingUrls"`
	NATSURLs      []string `json:"natsUrls"`
	S3Endpoint    string   `json:"s3Endpoint"`
	S3AccessKey   string   `json:"s3AccessKey"`
	S3SecretKey   string   `json:"s3SecretKey"`
	Region        string   `json:"region"`
	Bucket        string   `json:"bucket"`
	SourceID      string   `json:"sourceId"`
	WriteKey      string   `json:"writeKey"`
	DestinationID string   `json:"destinationId"`
}

// cluster is the local cluster under test, with the fault proxies between its processes:
//   - one HTTP fault proxy in front of S3 and one in front of STS, for the stager and copier lines only
//     (those lines get the proxy's port in the variable of their --s3-endpoint and --sts-endpoint);
//   - one toxiproxy (TCP) for each NATS node and each peer it routes to: the node's --routes variables
//     name the proxies, so that stopping every proxy to and from one node cuts its routes and nothing else.
//     Each node advertises (--cluster_advertise) an address that closes every connection: a peer that
//     learns of it by gossip cannot route to it around the proxies (it has its configured route).
//
// The Procfile and cluster.env stay the one topology: a proxy only changes what one variable means to
// the processes of one line.
type cluster struct {
	*procfile.Cluster
	dir     string
	root    string // the repository root: where the lines run and bin/ is
	base    []string
	env     map[string]string
	sum     summary
	s3      *faultProxy
	sts     *faultProxy
	routes  map[string][]*toxiproxy.Proxy // NATS line → every route proxy to or from it
	nowhere net.Listener                  // the advertised route address: closes what it accepts
	byProg  map[string][]string           // program → its lines, in Procfile order
}

var varRef = regexp.MustCompile(`\$\{(\w+)\}`)

// vars is the names of the variables a flag's unexpanded value uses.
func vars(value string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(value, -1) {
		out = append(out, m[1])
	}
	return out
}

// startCluster starts every Procfile line with free ports, the fault proxies in place, and bootstraps it.
func startCluster(ctx context.Context, cfg config, step func(string, ...any)) (*cluster, error) {
	lines, err := procfile.Read(cfg.procfile)
	if err != nil {
		return nil, err
	}
	env, err := procfile.ReadEnv(cfg.envFile)
	if err != nil {
		return nil, err
	}
	if err := procfile.FreePorts(env); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "s3dest-chaos-")
	if err != nil {
		return nil, err
	}
	env["S3DEST_CLUSTER_DIR"] = dir
	env["FLUSH_INTERVAL"] = cfg.flush.String()
	env["LOG_LEVEL"] = "warn"
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	procfileAbs, _ := filepath.Abs(cfg.procfile)
	envFileAbs, _ := filepath.Abs(cfg.envFile)
	base := append(os.Environ(), "PATH="+procfile.GoBin()+string(os.PathListSeparator)+os.Getenv("PATH"),
		"S3DEST_PROCFILE="+procfileAbs, "S3DEST_ENV_FILE="+envFileAbs)
	c := &cluster{Cluster: procfile.NewCluster(root, lines, env, base), dir: dir, root: root, base: base, env: env,
		routes: map[string][]*toxiproxy.Proxy{}, byProg: map[string][]string{}}
	c.LogDir = filepath.Join(dir, "logs")
	for _, l := range lines {
		prog := procfile.Program(l.Expand(env))
		c.byProg[prog] = append(c.byProg[prog], l.Name)
	}
	if err := c.proxies(lines); err != nil {
		c.close(true)
		return nil, err
	}
	step("starting the %d lines of %s (state and logs in %s)", len(lines), cfg.procfile, dir)
	if err := c.StartAll(); err != nil {
		c.close(true)
		return nil, err
	}
	if err := c.bootstrap(ctx, cfg); err != nil {
		c.close(true)
		return nil, err
	}
	return c, nil
}

// proxies puts the fault proxies in place (see cluster) before any line starts.
func (c *cluster) proxies(lines []procfile.Line) error {
	lineEnv := map[string]map[string]string{}
	set := func(line, name, value string) {
		if lineEnv[line] == nil {
			lineEnv[line] = map[string]string{}
		}
		lineEnv[line][name] = value
	}
	// The server each endpoint variable names, and the proxy every client line reaches it through.
	for _, prog := range []string{"stager", "copier"} {
		for _, name := range c.byProg[prog] {
			l, _ := c.lineNamed(name)
			for _, ep := range []struct {
				flag string
				p    **faultProxy
				kind faultKind
			}{{"--s3-endpoint", &c.s3, s3Kind}, {"--sts-endpoint", &c.sts, stsKind}} {
				vs := vars(procfile.FlagValue(l.Command, ep.flag))
				if len(vs) != 1 {
					return fmt.Errorf("%s: %s names no one port variable", name, ep.flag)
				}
				if *ep.p == nil {
					p, err := startFaultProxy(ep.kind, "127.0.0.1:"+c.env[vs[0]])
					if err != nil {
						return err
					}
					*ep.p = p
				}
				set(name, vs[0], strconv.Itoa((*ep.p).port))
			}
		}
	}
	// NATS routes: node → peer through a proxy of their own.
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.New(io.Discard))
	owner := map[string]string{} // route port variable → the NATS line listening on it
	for _, name := range c.byProg["nats-server"] {
		l, _ := c.lineNamed(name)
		vs := vars(procfile.FlagValue(l.Command, "--cluster"))
		if len(vs) != 1 {
			return fmt.Errorf("%s: --cluster names no one port variable", name)
		}
		owner[vs[0]] = name
	}
	nowhere, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.nowhere = nowhere
	go func() {
		for {
			conn, err := nowhere.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	for _, name := range c.byProg["nats-server"] {
		l, _ := c.lineNamed(name)
		vs := vars(procfile.FlagValue(l.Command, "--cluster_advertise"))
		if len(vs) != 1 {
			return fmt.Errorf("%s: --cluster_advertise names no one port variable", name)
		}
		set(name, vs[0], strconv.Itoa(nowhere.Addr().(*net.TCPAddr).Port))
		for _, v := range vars(procfile.FlagValue(l.Command, "--routes")) {
			peer, ok := owner[v]
			if !ok {
				return fmt.Errorf("%s routes to %s, which no NATS line listens on", name, v)
			}
			port, err := procfile.FreePort()
			if err != nil {
				return err
			}
			p := toxiproxy.NewProxy(srv, name+"-to-"+peer, "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+c.env[v])
			if err := p.Start(); err != nil {
				return fmt.Errorf("route proxy %s: %w", p.Name, err)
			}
			c.routes[name] = append(c.routes[name], p)
			c.routes[peer] = append(c.routes[peer], p)
			set(name, v, strconv.Itoa(port))
		}
	}
	for line, vars := range lineEnv {
		c.SetLineEnv(line, vars)
	}
	return nil
}

func (c *cluster) lineNamed(name string) (procfile.Line, bool) {
	for _, l := range c.Lines() {
		if l.Name == name {
			return l, true
		}
	}
	return procfile.Line{}, false
}

// bootstrap runs deploy/local/bootstrap, as `make cluster` does, and reads the summary it writes.
func (c *cluster) bootstrap(ctx context.Context, cfg config) error {
	bin, err := filepath.Abs(cfg.bin)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, "deploy/local/bootstrap"), "--bootstrap-timeout", "4m")
	cmd.Dir = c.root
	cmd.Env = append([]string{}, c.base...)
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "S3DEST_BIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bootstrap: %v\n%s%s", err, out, c.deadLines())
	}
	data, err := os.ReadFile(filepath.Join(c.dir, "summary.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &c.sum); err != nil {
		return fmt.Errorf("summary.json: %w", err)
	}
	if len(c.sum.TrackingURLs) == 0 || len(c.sum.NATSURLs) == 0 || c.sum.WriteKey == "" || c.sum.Bucket == "" {
		return fmt.Errorf("summary.json lacks tracking URLs, NATS URLs, a write key or a bucket")
	}
	return nil
}

// deadLines tells which lines have exited, with the end of their output.
func (c *cluster) deadLines() string {
	var b strings.Builder
	for _, l := range c.Lines() {
		if exited, err := c.Exited(l.Name); exited {
			out := c.Output(l.Name)
			if len(out) > 2000 {
				out = "…" + out[len(out)-2000:]
			}
			fmt.Fprintf(&b, "\n%s exited (%v):\n%s", l.Name, err, out)
		}
	}
	return b.String()
}

// natsLine is the Procfile line of the NATS server with the given --name.
func (c *cluster) natsLine(server string) (string, error) {
	for _, name := range c.byProg["nats-server"] {
		if procfile.FlagValue(c.Command(name), "--name") == server {
			return name, nil
		}
	}
	return "", fmt.Errorf("no NATS line runs server %q", server)
}

// metric sums the samples of a Prometheus metric at a line's ops address (--ops-addr), -1 if unread.
func (c *cluster) metric(ctx context.Context, line, name string) float64 {
	ops := procfile.FlagValue(c.Command(line), "--ops-addr")
	if ops == "" {
		return -1
	}
	v, err := scrape(ctx, "http://"+ops+"/metrics", name)
	if err != nil {
		return -1
	}
	return v
}

// close stops every line and proxy; the temp dir goes unless keep.
func (c *cluster) close(keep bool) {
	c.Stop()
	for _, ps := range c.routes {
		for _, p := range ps {
			p.Stop()
		}
	}
	if c.nowhere != nil {
		c.nowhere.Close()
	}
	for _, p := range []*faultProxy{c.s3, c.sts} {
		if p != nil {
			p.close()
		}
	}
	if !keep {
		os.RemoveAll(c.dir)
	}
}

// awaitAll waits until every line passes its readiness probe.
func (c *cluster) awaitAll(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Await(ctx); err != nil {
		return fmt.Errorf("%w%s", err, c.deadLines())
	}
	return nil
}
