package directory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"

	"github.com/latch-dev/latch/fault"
)

// maxUsernameRunes bounds a username, as typed and as stored.
const maxUsernameRunes = 128

// usernameProfile is the RFC 8265 profile of a deployment: UsernameCaseMapped
// ("Alice" is "alice"), or UsernameCasePreserved when usernames are
// case-sensitive. Both map full-width and half-width forms to their
// ordinary ones ("ｂｏｂ" is "bob"), normalise to NFC, and refuse what the
// PRECIS IdentifierClass disallows: spaces, control and zero-width
// (format) characters, symbols, and compatibility forms.
func (n Normalizer) usernameProfile() *precis.Profile {
	if n.UsernameCaseSensitive {
		return precis.UsernameCasePreserved
	}
	return precis.UsernameCaseMapped
}

// username returns the canonical key of a username: the form it is stored
// under and looked up by, at creation and at sign-in alike.
func (n Normalizer) username(v string) (string, error) {
	return enforceUsername(n.usernameProfile(), v)
}

// usernameDisplay is the form a username is stored and shown in: as typed,
// but width-mapped and normalised (never case-mapped).
func usernameDisplay(v string) (string, error) {
	return enforceUsername(precis.UsernameCasePreserved, v)
}

func enforceUsername(p *precis.Profile, v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" || utf8.RuneCountInString(v) > maxUsernameRunes {
		return "", fault.Invalid(fault.Detail{Field: "username", Message: "must be 1 to 128 characters"})
	}
	out, err := p.String(v)
	if err != nil || strings.ContainsRune(out, '@') || utf8.RuneCountInString(out) > maxUsernameRunes {
		return "", fault.Invalid(fault.Detail{Field: "username",
			Message: "must not contain @, spaces, control or zero-width characters, symbols or other characters usernames may not use (RFC 8265)"})
	}
	return out, nil
}

// checkUsernameScripts refuses a new username that mixes Latin, Greek and
// Cyrillic letters: the classic look-alike spoof ("pаypal" with a Cyrillic
// а). It is a narrow form of the mixed-script detection of Unicode TR39 §5:
// scripts whose letters are not confusable with these three (Han, Kana,
// Hangul…) may still combine with Latin, as they do in real names. Digits,
// punctuation and combining marks belong to no script and never count.
func checkUsernameScripts(key string) error {
	seen := 0
	for _, script := range []*unicode.RangeTable{unicode.Latin, unicode.Greek, unicode.Cyrillic} {
		if strings.IndexFunc(key, func(r rune) bool { return unicode.Is(script, r) }) >= 0 {
			seen++
		}
	}
	if seen > 1 {
		return fault.Invalid(fault.Detail{Field: "username", Message: "must not mix Latin, Greek and Cyrillic letters"})
	}
	return nil
}

// confusables maps the Cyrillic and Greek letters that are drawn like a
// Latin letter to that letter: a small subset of the confusables data of
// Unicode TR39 (confusables.txt), in both cases (for case-sensitive
// deployments). Letters TR39 maps to something other than a basic Latin
// letter (в to ʙ, к to ĸ…) are left out, as are compatibility forms PRECIS
// refuses anyway (ϲ), and Latin-only look-alikes (rn/m, l/I/1, 0/O):
// folding those would refuse many ordinary names.
var confusables = map[rune]rune{
	// Cyrillic, lower case.
	'а': 'a', 'с': 'c', 'ԁ': 'd', 'е': 'e', 'һ': 'h', 'і': 'i', 'ј': 'j', 'ӏ': 'l', 'о': 'o', 'р': 'p',
	'ԛ': 'q', 'ѕ': 's', 'ѵ': 'v', 'ԝ': 'w', 'х': 'x', 'у': 'y', 'ү': 'y',
	// Cyrillic, upper case.
	'А': 'A', 'В': 'B', 'С': 'C', 'Е': 'E', 'Н': 'H', 'І': 'I', 'Ј': 'J', 'К': 'K', 'М': 'M', 'О': 'O',
	'Р': 'P', 'Ԛ': 'Q', 'Ѕ': 'S', 'Т': 'T', 'Ѵ': 'V', 'Ԝ': 'W', 'Х': 'X', 'У': 'Y', 'Ү': 'Y', 'Ӏ': 'l',
	// Greek, lower case.
	'α': 'a', 'ι': 'i', 'ϳ': 'j', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'γ': 'y',
	// Greek, upper case.
	'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H', 'Ι': 'I', 'Ϳ': 'J', 'Κ': 'K', 'Μ': 'M',
	'Ν': 'N', 'Ο': 'O', 'Ρ': 'P', 'Τ': 'T', 'Υ': 'Y', 'Χ': 'X',
}

// usernameSkeleton is the look-alike class of a username key, after Unicode
// TR39's skeleton(): decompose (NFD, so "ё" and "ë" agree), then map each
// confusable letter to its Latin prototype. Two keys with one skeleton
// look alike; the users table holds each skeleton at most once, so a new
// username that looks like an existing one is refused.
func usernameSkeleton(key string) string {
	return strings.Map(func(r rune) rune {
		if p, ok := confusables[r]; ok {
			return p
		}
		return r
	}, norm.NFD.String(key))
}

// ErrUsernameTaken is the answer to a username that is in use or looks like
// one that is: the same as for an exact duplicate, which it is to a reader.
func ErrUsernameTaken() *fault.Error {
	return fault.New(CodeUsernameInUse, http.StatusUnprocessableEntity, "The username is already in use, or looks like one that is.")
}

// usernameHolder returns the user whose username is key or looks like it
// (nil if none), and refuses a key that mixes scripts: whether a new
// username may be taken.
func (s *Users) UsernameHolder(ctx context.Context, key string) (*User, error) {
	if err := checkUsernameScripts(key); err != nil {
		return nil, err
	}
	var row Row
	err := s.db.WithContext(ctx).Where("username_key = ? OR username_skeleton = ?", key, usernameSkeleton(key)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("directory: find user: %w", err)
	}
	return row.User(), nil
}

// BackfillUsernames is the data step of the username_skeleton migration.
// Keys written before usernames followed RFC 8265 are re-derived (so that,
// say, a full-width name typed at sign-in finds its account), and every
// username gets its skeleton. It depends on no configuration: the old key
// tells how it was made (lower-cased, or kept as typed). A key that would
// collide with another account's, or a username RFC 8265 refuses, keeps its
// old key; a skeleton another account already holds stays NULL (either of
// two existing look-alikes then blocks new ones equally).
func BackfillUsernames(tx *gorm.DB) error {
	type legacy struct {
		ID          string
		Username    *string
		UsernameKey string
	}
	last := ""
	for {
		var rows []legacy
		if err := tx.Raw(`SELECT id, username, username_key FROM users WHERE username_key IS NOT NULL AND id > ? ORDER BY id LIMIT 500`,
			last).Scan(&rows).Error; err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		last = rows[len(rows)-1].ID
		// Keys unchanged and their own skeleton (plain ASCII, mostly) are
		// one statement, written first; the others one by one after.
		var same []string
		var other [][2]string // id, skeleton
		for _, r := range rows {
			key := r.UsernameKey
			if r.Username != nil {
				p := precis.UsernameCasePreserved
				if key != *r.Username {
					p = precis.UsernameCaseMapped
				}
				if fresh, err := p.String(*r.Username); err == nil && fresh != key {
					res := tx.Exec(`UPDATE users SET username_key = ? WHERE id = ? AND NOT EXISTS (SELECT 1 FROM users u2 WHERE u2.username_key = ?)`,
						fresh, r.ID, fresh)
					if res.Error != nil {
						return res.Error
					}
					if res.RowsAffected == 1 {
						key = fresh
					}
				}
			}
			skeleton := usernameSkeleton(key)
			if key == r.UsernameKey && skeleton == key {
				same = append(same, r.ID)
			} else {
				other = append(other, [2]string{r.ID, skeleton})
			}
		}
		if len(same) > 0 {
			// Keys are unique, so these skeletons are distinct from each
			// other; only one taken by an earlier batch is left NULL.
			if err := tx.Exec(`UPDATE users SET username_skeleton = username_key WHERE id IN ?
				AND NOT EXISTS (SELECT 1 FROM users u2 WHERE u2.username_skeleton = users.username_key)`, same).Error; err != nil {
				return err
			}
		}
		for _, o := range other {
			if err := tx.Exec(`UPDATE users SET username_skeleton = ? WHERE id = ? AND NOT EXISTS (SELECT 1 FROM users u2 WHERE u2.username_skeleton = ?)`,
				o[1], o[0], o[1]).Error; err != nil {
				return err
			}
		}
	}
}
