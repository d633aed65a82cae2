// Package buildinfo reports which Latch this binary is.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// linked is set at build time: -ldflags "-X github.com/latch-dev/latch/buildinfo.linked=v1.2.3".
// It is the one package variable in Latch: the linker writes it, nothing
// else does.
var linked string

// Version is the linked-in version, else what the Go toolchain recorded:
// the module version of a `go install …@v1.2.3`, or the VCS revision of a
// build from a checkout (with "-dirty" for uncommitted changes), else "dev".
func Version() string {
	if linked != "" {
		return linked
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return fromBuildInfo(info)
}

func fromBuildInfo(info *debug.BuildInfo) string {
	if v := info.Main.Version; v != "" && v != "(devel)" && !strings.HasPrefix(v, "v0.0.0-") {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "dev-" + rev + dirty
	}
	if v := info.Main.Version; strings.HasPrefix(v, "v0.0.0-") {
		return v // a pseudo-version still names a commit
	}
	return "dev"
}
