package postgres

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// A DSN that pgx cannot parse is reported without its password: the DSN is
// parsed here into its parts (libpq's keyword/value syntax, or a URL), the
// password values are replaced, and pgx parses that again to say what is
// wrong. The password's text is never searched for in a message.

// passwordKeys are the DSN keys whose values are secrets.
var passwordKeys = map[string]bool{"password": true, "sslpassword": true}

// dsnError explains why pgx cannot parse dsn, without any password in it.
func dsnError(dsn string) error {
	redacted, err := redactDSN(dsn)
	if err != nil {
		return err
	}
	if _, err := pgx.ParseConfig(redacted); err != nil {
		return err
	}
	return errors.New("not a valid connection string")
}

// redactDSN returns dsn with every password value replaced by "xxxxx".
func redactDSN(dsn string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // url.Error repeats the whole URL
			}
			return "", errors.New("not a valid postgresql:// URL: " + err.Error())
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		for k := range q {
			if passwordKeys[k] {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	pairs, err := parseKeywordValues(dsn)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, kv := range pairs {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := kv[1]
		if passwordKeys[kv[0]] {
			v = "xxxxx"
		}
		b.WriteString(kv[0] + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'")
	}
	return b.String(), nil
}

// parseKeywordValues splits a libpq keyword/value string into its pairs:
// keyword = value, whitespace around "=" allowed, a value either quoted in
// single quotes or running to the next whitespace, backslash escaping the
// next character in both.
func parseKeywordValues(s string) ([][2]string, error) {
	var pairs [][2]string
	i := 0
	skipSpace := func() {
		for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) >= 0 {
			i++
		}
	}
	for {
		skipSpace()
		if i == len(s) {
			return pairs, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && strings.IndexByte(" \t\n\r\f\v", s[i]) < 0 {
			i++
		}
		key := s[start:i]
		skipSpace()
		if i == len(s) || s[i] != '=' {
			return nil, fmt.Errorf(`not a valid keyword/value string: the keyword at byte %d has no "="`, start)
		}
		i++
		skipSpace()
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for {
				if i == len(s) {
					return nil, fmt.Errorf(`not a valid keyword/value string: the quoted value after byte %d has no closing quote`, start)
				}
				c := s[i]
				i++
				if c == '\'' {
					break
				}
				if c == '\\' && i < len(s) {
					c = s[i]
					i++
				}
				v.WriteByte(c)
			}
		} else {
			for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) < 0 {
				c := s[i]
				i++
				if c == '\\' && i < len(s) {
					c = s[i]
					i++
				}
				v.WriteByte(c)
			}
		}
		pairs = append(pairs, [2]string{key, v.String()})
	}
}
