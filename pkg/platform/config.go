package platform

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/s3dest/s3dest/pkg/bus"
)

// Common is the configuration every service binary shares. Service configs embed it.
type Common struct {
	NATSURL  string `flag:"nats-url" env:"S3DEST_NATS_URL" default:"nats://127.0.0.1:4222" help:"NATS server URL"`
	OpsAddr  string `flag:"ops-addr" env:"S3DEST_OPS_ADDR" default:"127.0.0.1:9090" help:"address of /livez, /readyz and /metrics"`
	LogLevel string `flag:"log-level" env:"S3DEST_LOG_LEVEL" default:"info" help:"debug, info, warn or error"`
	Replicas int    `flag:"replicas" env:"S3DEST_REPLICAS" default:"1" help:"JetStream replicas of every stream (1, 3 or 5)"`
	// Partitions is how many streams EVENTS is split over by a hash of the source ID (bus.Partitions),
	// the same on every service; a Common built in code with 0 gets 1.
	Partitions int `flag:"partitions" env:"S3DEST_PARTITIONS" default:"1" help:"EVENTS streams the sources are split over by a hash of the source ID (1 to 256; the same on every service)"`
	// AckWait is how long JetStream waits for a delivered message before redelivering it. Work in progress
	// renews it, so it only bounds how soon a crashed process's messages flow again.
	AckWait time.Duration `flag:"ack-wait" env:"S3DEST_ACK_WAIT" default:"30s" help:"redeliver a crashed process's messages after this"`
	// NATSCreds, NATSCA, NATSCert and NATSKey are files, so that a Kubernetes Secret mounted as files (or
	// any secret store's files) configures authentication and TLS without a secret in a flag.
	NATSCreds string `flag:"nats-creds" env:"S3DEST_NATS_CREDS" help:"NATS credentials file (user JWT and NKey seed); empty connects without"`
	NATSCA    string `flag:"nats-ca" env:"S3DEST_NATS_CA" help:"PEM file of the CA that signs the NATS servers' certificates (with tls:// URLs)"`
	NATSCert  string `flag:"nats-cert" env:"S3DEST_NATS_CERT" help:"PEM client certificate for NATS mutual TLS (with --nats-key)"`
	NATSKey   string `flag:"nats-key" env:"S3DEST_NATS_KEY" help:"PEM private key of --nats-cert"`
}

// NATSOptions are the connection options of the NATS settings: credentials and TLS files.
func (c Common) NATSOptions() []nats.Option {
	var opts []nats.Option
	if c.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	}
	if c.NATSCA != "" {
		opts = append(opts, nats.RootCAs(c.NATSCA))
	}
	if c.NATSCert != "" {
		opts = append(opts, nats.ClientCert(c.NATSCert, c.NATSKey))
	}
	return opts
}

// Validate checks the rules of the shared fields.
func (c Common) Validate() error {
	var errs []error
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack-wait: must be at least 1s, got %s", c.AckWait))
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("replicas: must be 1, 3 or 5, got %d", c.Replicas))
	}
	if (c.NATSCert == "") != (c.NATSKey == "") {
		errs = append(errs, errors.New("nats-cert and nats-key: set both or neither"))
	}
	if c.Partitions != 0 {
		if err := bus.Partitions(c.Partitions).Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StreamConfig is the streams' shared settings with this service's replicas and partitions.
func (c Common) StreamConfig() bus.StreamConfig {
	sc := bus.DefaultStreamConfig()
	sc.Replicas = c.Replicas
	sc.Partitions = c.EventsPartitions()
	return sc
}

// EventsPartitions is the partitions setting, 0 read as 1.
func (c Common) EventsPartitions() bus.Partitions { return bus.Partitions(max(c.Partitions, 1)) }

// Setting is one configuration setting of a config struct, as its tags declare it: the one flag and the
// one environment variable (always "S3DEST_" and the flag in upper case, "-" as "_"), and the names it had
// before, which still work and warn.
type Setting struct {
	Flag     string   `json:"flag"`
	Env      string   `json:"env"`
	Default  string   `json:"default,omitempty"`
	Help     string   `json:"help"`
	Secret   bool     `json:"secret,omitempty"`
	OldFlags []string `json:"oldFlags,omitempty"`
	OldEnvs  []string `json:"oldEnvs,omitempty"`
}

// Settings lists the settings of the struct cfg points to, embedded structs included, in field order.
func Settings(cfg any) ([]Setting, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, errors.New("config settings: want a pointer to a struct")
	}
	var out []Setting
	err := walkSettings(v.Elem(), func(s Setting, _ reflect.Value) error { out = append(out, s); return nil })
	return out, err
}

func walkSettings(v reflect.Value, fn func(Setting, reflect.Value) error) error {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := walkSettings(fv, fn); err != nil {
				return err
			}
			continue
		}
		if f.Tag.Get("flag") == "" {
			continue
		}
		s := Setting{Flag: f.Tag.Get("flag"), Env: f.Tag.Get("env"), Default: f.Tag.Get("default"),
			Help: f.Tag.Get("help"), Secret: f.Tag.Get("secret") == "true",
			OldFlags: splitList(f.Tag.Get("oldflag")), OldEnvs: splitList(f.Tag.Get("oldenv"))}
		if s.Secret && f.Type.Kind() != reflect.String {
			return fmt.Errorf("config: secret field %s must be a string", f.Name)
		}
		if err := fn(s, fv); err != nil {
			return err
		}
	}
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// Bind registers a flag for every tagged field of the struct cfg points to (including embedded structs),
// after setting each field to its default and then to its environment variable when that is set. Parsing
// fs then lets flags override the environment. Fields are tagged `flag`, `env`, `default` and `help`;
// supported kinds are string, bool, int, int64 and time.Duration.
//
// A string field tagged `secret:"true"` can also be read from a file, so that it never shows in ps or in
// the process's environment: the flag NAME-file and the variable ENV_FILE name the file, whose content,
// without surrounding whitespace, becomes the value (the later of the flag or the file flag wins; a file
// given in the environment is read by Bind). Errors name the setting, never the secret.
//
// A setting renamed keeps its old names, tagged `oldflag` and `oldenv` (comma-separated), so that a
// cluster being upgraded keeps working: an old flag or variable still sets the value (the new variable wins
// over an old one) and writes a warning naming the new name to fs.Output().
func Bind(fs *flag.FlagSet, cfg any) error {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return errors.New("bind config: want a pointer to a struct")
	}
	return walkSettings(v.Elem(), func(s Setting, fv reflect.Value) error { return bindSetting(fs, s, fv) })
}

func bindSetting(fs *flag.FlagSet, s Setting, fv reflect.Value) error {
	warn := func(old, now string) {
		fmt.Fprintf(fs.Output(), "warning: %s is deprecated: use %s\n", old, now)
	}
	val, source := s.Default, ""
	if e, ok := os.LookupEnv(s.Env); ok && s.Env != "" {
		val, source = e, s.Env
	} else {
		for _, old := range s.OldEnvs {
			if e, ok := os.LookupEnv(old); ok {
				warn(old, s.Env)
				val, source = e, old
				break
			}
		}
	}
	help := s.Help
	if s.Env != "" {
		help += " (env " + s.Env + ")"
	}
	if err := setField(fv, val); err != nil {
		return fmt.Errorf("%s: %w", firstNonEmpty(source, s.Flag), err)
	}
	if s.Secret {
		p := fv.Addr().Interface().(*string)
		if err := bindSecretFile(fs, p, s, warn); err != nil {
			return err
		}
		help += " (or " + s.Flag + "-file)"
	}
	switch p := fv.Addr().Interface().(type) {
	case *string:
		fs.StringVar(p, s.Flag, *p, help)
	case *bool:
		fs.BoolVar(p, s.Flag, *p, help)
	case *int:
		fs.IntVar(p, s.Flag, *p, help)
	case *int64:
		fs.Int64Var(p, s.Flag, *p, help)
	case *time.Duration:
		fs.DurationVar(p, s.Flag, *p, help)
	default:
		return fmt.Errorf("bind config: setting %s has unsupported type %s", s.Flag, fv.Type())
	}
	for _, old := range s.OldFlags {
		fs.Var(&oldFlag{fv: fv, warn: func() { warn("--"+old, "--"+s.Flag) }}, old, "deprecated: use --"+s.Flag)
	}
	return nil
}

// oldFlag is a setting's former flag name: it sets the same field and warns.
type oldFlag struct {
	fv   reflect.Value
	warn func()
}

func (o *oldFlag) String() string { return "" }

func (o *oldFlag) Set(v string) error {
	o.warn()
	return setField(o.fv, v)
}

// IsBoolFlag lets a former boolean flag be given without a value, as its new name can.
func (o *oldFlag) IsBoolFlag() bool { return o.fv.IsValid() && o.fv.Kind() == reflect.Bool }

// bindSecretFile lets a secret setting be read from a file named by NAME-file or ENV_FILE (or an old
// name's -file flag or _FILE variable, with a warning).
func bindSecretFile(fs *flag.FlagSet, p *string, s Setting, warn func(old, now string)) error {
	name := s.Flag
	read := func(file string) error {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("%s-file: %w", name, err)
		}
		if *p = strings.TrimSpace(string(data)); *p == "" {
			return fmt.Errorf("%s-file: %s is empty", name, file)
		}
		return nil
	}
	fileEnv := s.Env + "_FILE"
	file := os.Getenv(fileEnv)
	if s.Env != "" && file == "" {
		for _, old := range s.OldEnvs {
			if file = os.Getenv(old + "_FILE"); file != "" {
				warn(old+"_FILE", fileEnv)
				break
			}
		}
	}
	if s.Env != "" && file != "" {
		if err := read(file); err != nil {
			return err
		}
	}
	fs.Func(name+"-file", "file holding "+name+", so that it shows in no ps or environment (env "+fileEnv+")", read)
	for _, old := range s.OldFlags {
		fs.Func(old+"-file", "deprecated: use --"+name+"-file", func(f string) error {
			warn("--"+old+"-file", "--"+name+"-file")
			return read(f)
		})
	}
	return nil
}

func setField(fv reflect.Value, val string) error {
	if val == "" {
		return nil
	}
	switch p := fv.Addr().Interface().(type) {
	case *string:
		*p = val
	case *bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", val)
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(val)
		if err != nil {
			return fmt.Errorf("must be a whole number, got %q", val)
		}
		*p = n
	case *int64:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("must be a whole number, got %q", val)
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("must be a duration such as 30s or 5m, got %q", val)
		}
		*p = d
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
