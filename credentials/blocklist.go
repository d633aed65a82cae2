package credentials

import (
	_ "embed"
	"strings"
	"sync"
)

// commonPasswordsData is the offline common-password list (49k entries from
// @zxcvbn-ts/language-common, MIT; see data/README.md): one lower-case entry
// per line. It is embedded so the policy works without network access and
// without a file next to the binary.
//
//go:embed data/common-passwords.txt
var commonPasswordsData string

var (
	commonOnce sync.Once
	commonSet  map[string]struct{}
)

// commonPasswords builds the lookup set once, on first use, so processes
// that never check a password do not pay the few MiB it takes.
func commonPasswords() map[string]struct{} {
	commonOnce.Do(func() {
		lines := strings.Split(commonPasswordsData, "\n")
		set := make(map[string]struct{}, len(lines))
		for _, l := range lines {
			l = strings.TrimSpace(l)
			if l != "" {
				set[l] = struct{}{}
			}
		}
		commonSet = set
	})
	return commonSet
}

// IsCommonPassword reports whether password, compared case-insensitively as
// a whole, is on the common-password blocklist.
func IsCommonPassword(password string) bool {
	_, ok := commonPasswords()[strings.ToLower(password)]
	return ok
}

// CommonPasswordCount returns the number of entries of the blocklist.
func CommonPasswordCount() int { return len(commonPasswords()) }
