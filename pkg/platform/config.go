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

// Bind registers a flag for every tagged field of the struct cfg points to (including embedded structs),
// after setting each field to its default and then to its environment variable when that is set. Parsing
// fs then lets flags override the environment. Fields are tagged `flag`, `env`, `default` and `help`;
// supported kinds are string, bool, int, int64 and time.Duration.
//
// A string field tagged `secret:"true"` can also be read from a file, so that it never shows in ps or in
// the process's environment: the flag NAME-file and the variable ENV_FILE name the file, whose content,
// without surrounding whitespace, becomes the value (the later of the flag or the file flag wins; a file
// given in the environment is read by Bind). Errors name the setting, never the secret.
func Bind(fs *flag.FlagSet, cfg any) error {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return errors.New("bind config: want a pointer to a struct")
	}
	return bindStruct(fs, v.Elem())
}

func bindStruct(fs *flag.FlagSet, v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := bindStruct(fs, fv); err != nil {
				return err
			}
			continue
		}
		name := f.Tag.Get("flag")
		if name == "" {
			continue
		}
		val := f.Tag.Get("default")
		env := f.Tag.Get("env")
		if e, ok := os.LookupEnv(env); ok && env != "" {
			val = e
		}
		help := f.Tag.Get("help")
		if env != "" {
			help += " (env " + env + ")"
		}
		if err := setField(fv, val); err != nil {
			return fmt.Errorf("%s: %w", firstNonEmpty(env, name), err)
		}
		if f.Tag.Get("secret") == "true" {
			p, ok := fv.Addr().Interface().(*string)
			if !ok {
				return fmt.Errorf("bind config: secret field %s must be a string", f.Name)
			}
			if err := bindSecretFile(fs, p, name, env); err != nil {
				return err
			}
			help += " (or " + name + "-file)"
		}
		switch p := fv.Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, help)
		case *bool:
			fs.BoolVar(p, name, *p, help)
		case *int:
			fs.IntVar(p, name, *p, help)
		case *int64:
			fs.Int64Var(p, name, *p, help)
		case *time.Duration:
			fs.DurationVar(p, name, *p, help)
		default:
			return fmt.Errorf("bind config: field %s has unsupported type %s", f.Name, f.Type)
		}
	}
	return nil
}

// bindSecretFile lets a secret setting be read from a file named by NAME-file or ENV_FILE.
func bindSecretFile(fs *flag.FlagSet, p *string, name, env string) error {
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
	if file := os.Getenv(env + "_FILE"); env != "" && file != "" {
		if err := read(file); err != nil {
			return err
		}
	}
	fs.Func(name+"-file", "file holding "+name+", so that it shows in no ps or environment (env "+env+"_FILE)", read)
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
