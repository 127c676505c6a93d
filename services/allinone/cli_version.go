package allinone

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Set by `make build` (-ldflags -X): Go stamps no VCS settings into a build in workspace mode (go.work),
// nor with GOFLAGS=-buildvcs=false. A plain go build leaves them empty.
var (
	buildTime       string // RFC 3339
	buildRevision   string // git describe --always --dirty --abbrev=40: the commit, "-dirty" when modified
	buildCommitTime string // the commit's time, RFC 3339
)

// versionInfo is what `s3dest version` prints: the build info Go stamps into the binary.
type versionInfo struct {
	Version    string `json:"version"`              // the module version, "(devel)" for a build in the work tree
	Revision   string `json:"revision,omitempty"`   // the VCS commit built
	Modified   bool   `json:"modified"`             // the work tree had changes not committed
	CommitTime string `json:"commitTime,omitempty"` // that commit's time
	BuildTime  string `json:"buildTime,omitempty"`  // when make build ran
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
}

func readVersion() versionInfo {
	v := versionInfo{Version: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, BuildTime: buildTime}
	v.Revision, v.CommitTime = strings.TrimSuffix(buildRevision, "-dirty"), buildCommitTime
	v.Modified = strings.HasSuffix(buildRevision, "-dirty")
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version = info.Main.Version
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func versionCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "the version, commit and Go version this binary was built from",
		Args:    positional(),
		GroupID: groupCLI,
		RunE: func(*cobra.Command, []string) error {
			v := readVersion()
			if a.json {
				return printValue(a.out, v)
			}
			rev := orDash(v.Revision)
			if v.Modified {
				rev += " (with changes not committed)"
			}
			return table(a.out, []string{"version", v.Version}, [][]string{
				{"commit", rev}, {"commit time", orDash(v.CommitTime)}, {"built", orDash(v.BuildTime)},
				{"go", v.GoVersion}, {"platform", v.Platform},
			})
		},
	}
	a.addJSONFlag(cmd.Flags())
	return cmd
}
