package allinone

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// The CLI's login is one file, config.json in the user's config directory (os.UserConfigDir: on Linux
// $XDG_CONFIG_HOME/s3dest, else ~/.config/s3dest), mode 0600 in a directory of mode 0700. `s3dest login`
// and `s3dest dev` write it; every client command reads it when neither a flag nor the environment
// names the admin API and its token. Its token is sent only to the URL it was stored with.

// defaultAdminURL is where the client looks when nothing names the admin API: s3dest dev's default.
const defaultAdminURL = "http://127.0.0.1:8081"

// loginConfig is config.json.
type loginConfig struct {
	AdminURL string `json:"adminUrl"`
	Token    string `json:"token"`
}

// configPath is the login file's path.
func configPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("the CLI's config directory: %w", err)
	}
	return filepath.Join(dir, "s3dest", "config.json"), nil
}

// displayConfigPath is configPath for help texts.
func displayConfigPath() string {
	if p, err := configPath(); err == nil {
		return p
	}
	return "$XDG_CONFIG_HOME/s3dest/config.json"
}

// readLogin reads the login file; ok is false when there is none.
func readLogin() (cfg loginConfig, path string, ok bool, err error) {
	if path, err = configPath(); err != nil {
		return cfg, path, false, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, path, false, nil
	}
	if err != nil {
		return cfg, path, false, err
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, path, false, fmt.Errorf("%s: not the CLI's login file (%v); run s3dest login again, or remove it", path, err)
	}
	return cfg, path, true, nil
}

// saveLogin writes the login file (0600 in a 0700 directory), replacing it whole; it returns the path.
func saveLogin(cfg loginConfig) (string, error) {
	path, err := configPath()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("the CLI's config directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("the CLI's config directory: %w", err)
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	tmp, err := os.CreateTemp(dir, "config-*.json") // 0600
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing to remove
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// checkAdminURL says what is wrong with an admin URL.
func checkAdminURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErrorf("admin-url: %q is not an http(s) URL with a host (e.g. http://127.0.0.1:8081)", s)
	}
	return nil
}

// sameURL compares admin URLs as the client uses them (without a trailing slash).
func sameURL(a, b string) bool { return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/") }

// connFlags are the flags of every client command: how to reach the admin API, and --json.
type connFlags struct {
	adminURL, token, tokenFile string
}

// addClientFlags gives cmd and its subcommands the admin API flags and --json.
func (a *app) addClientFlags(cmd *cobra.Command) *cobra.Command {
	f := cmd.PersistentFlags()
	f.StringVar(&a.conn.adminURL, "admin-url", "", "the admin REST API (env S3DEST_ADMIN_URL; default: the login's, else "+defaultAdminURL+")")
	f.StringVar(&a.conn.token, "admin-token", "", "the admin bearer token (env S3DEST_ADMIN_TOKEN; default: the login's)")
	f.StringVar(&a.conn.tokenFile, "admin-token-file", "", "file holding the admin token, so that it shows in no ps (env S3DEST_ADMIN_TOKEN_FILE)")
	// The former names (docs/configuration.md): still read, with a warning naming the new one.
	f.StringVar(&a.conn.token, "token", "", "the admin bearer token")
	f.StringVar(&a.conn.tokenFile, "token-file", "", "file holding the admin token")
	_ = f.MarkHidden("token") // clientConfig warns on stderr, keeping --json's stdout clean
	_ = f.MarkHidden("token-file")
	a.addJSONFlag(f)
	return cmd
}

// addJSONFlag adds --json to a flag set.
func (a *app) addJSONFlag(f interface {
	BoolVar(p *bool, name string, value bool, usage string)
}) {
	f.BoolVar(&a.json, "json", false, "print JSON (the API's objects) instead of text")
}

// clientConfig finds the admin API and its token: flags, then the environment, then the login file,
// then the default URL (DESIGN.md §10). The login's token goes only to the login's URL.
func (a *app) clientConfig(cmd *cobra.Command) (ClientConfig, error) {
	var cfg ClientConfig
	flags := cmd.Flags()
	switch {
	case flags.Changed("admin-url"):
		cfg.AdminURL = a.conn.adminURL
	case os.Getenv("S3DEST_ADMIN_URL") != "":
		cfg.AdminURL = os.Getenv("S3DEST_ADMIN_URL")
	}
	readFile := func(name, file string) (string, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", usageErrorf("%s: %w", name, err)
		}
		if t := strings.TrimSpace(string(data)); t != "" {
			return t, nil
		}
		return "", usageErrorf("%s: %s is empty", name, file)
	}
	var err error
	for _, former := range []string{"token", "token-file"} {
		if flags.Changed(former) {
			fmt.Fprintf(a.errOut, "warning: --%s is deprecated: use --admin-%s\n", former, former)
		}
	}
	tokenSet := flags.Changed("admin-token") || flags.Changed("token")
	tokenFileSet := flags.Changed("admin-token-file") || flags.Changed("token-file")
	switch {
	case tokenSet && tokenFileSet:
		return cfg, usageErrorf("admin-token and admin-token-file: give one of them, not both")
	case tokenSet:
		cfg.Token = a.conn.token
	case tokenFileSet:
		cfg.Token, err = readFile("admin-token-file", a.conn.tokenFile)
	case os.Getenv("S3DEST_ADMIN_TOKEN") != "":
		cfg.Token = os.Getenv("S3DEST_ADMIN_TOKEN")
	case os.Getenv("S3DEST_ADMIN_TOKEN_FILE") != "":
		cfg.Token, err = readFile("S3DEST_ADMIN_TOKEN_FILE", os.Getenv("S3DEST_ADMIN_TOKEN_FILE"))
	}
	if err != nil || (cfg.AdminURL != "" && cfg.Token != "") {
		return cfg, err
	}
	login, _, ok, err := readLogin()
	if err != nil {
		return cfg, err
	}
	if ok && cfg.AdminURL == "" {
		cfg.AdminURL = login.AdminURL
	}
	if cfg.AdminURL == "" {
		cfg.AdminURL = defaultAdminURL
	}
	if ok && cfg.Token == "" && sameURL(cfg.AdminURL, login.AdminURL) {
		cfg.Token = login.Token
	}
	return cfg, nil
}

// client is the admin API client for cmd's flags.
func (a *app) client(cmd *cobra.Command) (*apiClient, error) {
	cfg, err := a.clientConfig(cmd)
	if err != nil {
		return nil, err
	}
	return newAPIClient(cfg)
}

func loginCommand(a *app) *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "login [flags]",
		Short: "store the admin URL and token for the other commands",
		Long: `Stores the admin API's URL and token in ` + displayConfigPath() + ` (mode 0600),
after checking that the API accepts the token. The token comes from --admin-token-file, --admin-token or
S3DEST_ADMIN_TOKEN, or else from standard input (asked for, unshown, on a terminal).
s3dest dev logs the CLI in to itself when it starts; s3dest logout removes the file.`,
		Example: `  s3dest login --url https://s3dest.example.com --admin-token-file ~/s3dest-token
  echo "$TOKEN" | s3dest login --url http://127.0.0.1:8081`,
		Args:    positional(),
		GroupID: groupCLI,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("url") {
				if cmd.Flags().Changed("admin-url") && !sameURL(url, a.conn.adminURL) {
					return usageErrorf("url and admin-url: give one of them (they are the same setting)")
				}
				a.conn.adminURL = url
				if err := cmd.Flags().Set("admin-url", url); err != nil {
					return err
				}
			}
			cfg, err := a.clientConfig(cmd)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("admin-token") && !cmd.Flags().Changed("admin-token-file") && !cmd.Flags().Changed("token") && !cmd.Flags().Changed("token-file") && os.Getenv("S3DEST_ADMIN_TOKEN") == "" && os.Getenv("S3DEST_ADMIN_TOKEN_FILE") == "" {
				if cfg.Token, err = readToken(a.in, a.errOut); err != nil {
					return err
				}
			}
			api, err := newAPIClient(cfg)
			if err != nil {
				return err
			}
			var ws struct {
				Workspace struct {
					ID string `json:"id"`
				} `json:"workspace"`
			}
			if _, err := api.call(cmd.Context(), http.MethodGet, "/workspace", nil, &ws); err != nil {
				return err
			}
			path, err := saveLogin(loginConfig{AdminURL: strings.TrimSuffix(cfg.AdminURL, "/"), Token: cfg.Token})
			if err != nil {
				return err
			}
			if a.json {
				return printValue(a.out, map[string]string{"adminUrl": cfg.AdminURL, "workspaceId": ws.Workspace.ID, "configFile": path})
			}
			_, err = fmt.Fprintf(a.out, "Logged in to %s (workspace %s); saved in %s\n", cfg.AdminURL, ws.Workspace.ID, path)
			return err
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "the admin REST API (the same as --admin-url)")
	return a.addClientFlags(cmd)
}

// readToken reads the token from in: one line, unshown when in is a terminal.
func readToken(in io.Reader, prompt io.Writer) (string, error) {
	var line string
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Admin token (not shown): ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read the token: %w", err)
		}
		line = string(b)
	} else {
		s, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the token from standard input: %w", err)
		}
		line = s
	}
	if t := strings.TrimSpace(line); t != "" {
		return t, nil
	}
	return "", usageErrorf("admin-token: none given: use --admin-token-file FILE, or pass it on standard input")
}

func logoutCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "logout",
		Short:   "forget the stored admin URL and token",
		Long:    `Removes ` + displayConfigPath() + `, written by s3dest login and s3dest dev.`,
		Args:    positional(),
		GroupID: groupCLI,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := configPath()
			if err != nil {
				return err
			}
			err = os.Remove(path)
			removed := err == nil
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if a.json {
				return printValue(a.out, map[string]any{"configFile": path, "removed": removed})
			}
			msg := "Logged out: removed " + path
			if !removed {
				msg = "Not logged in: there is no " + path
			}
			_, err = fmt.Fprintln(a.out, msg)
			return err
		},
	}
	a.addJSONFlag(cmd.Flags())
	return cmd
}
