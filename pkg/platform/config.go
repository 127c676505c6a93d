package platform

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"time"
)

// Common is the configuration every service binary shares. Service configs embed it.
type Common struct {
	NATSURL  string `flag:"nats-url" env:"S3DEST_NATS_URL" default:"nats://127.0.0.1:4222" help:"NATS server URL"`
	OpsAddr  string `flag:"ops-addr" env:"S3DEST_OPS_ADDR" default:"127.0.0.1:9090" help:"address of /livez, /readyz and /metrics"`
	LogLevel string `flag:"log-level" env:"S3DEST_LOG_LEVEL" default:"info" help:"debug, info, warn or error"`
	Replicas int    `flag:"replicas" env:"S3DEST_REPLICAS" default:"1" help:"JetStream replicas of every stream (1, 3 or 5)"`
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
	return errors.Join(errs...)
}

// Bind registers a flag for every tagged field of the struct cfg points to (including embedded structs),
// after setting each field to its default and then to its environment variable when that is set. Parsing
// fs then lets flags override the environment. Fields are tagged `flag`, `env`, `default` and `help`;
// supported kinds are string, bool, int, int64 and time.Duration.
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
