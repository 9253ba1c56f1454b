package mysql

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// Option files as libmysqlclient reads them for read_default_file and
// read_default_group: the [client] group, then the named group, later values
// winning; the keys given in the configuration win over both.
var defaultOptionFiles = []string{"/etc/my.cnf", "/etc/mysql/my.cnf", "~/.my.cnf"}

// fileOptions are the connection settings an option file gave.
type fileOptions map[string]string

func readOptionFile(path, group string) (fileOptions, error) {
	groups := map[string]bool{"client": true}
	if group != "" {
		groups[strings.ToLower(group)] = true
	}
	out := fileOptions{}
	if path != "" {
		if err := out.read(expandHome(path), groups, 0); err != nil {
			return nil, err
		}
		return out, nil
	}
	for _, p := range defaultOptionFiles {
		p = expandHome(p)
		if _, err := os.Stat(p); err == nil {
			if err := out.read(p, groups, 0); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}

func (f fileOptions) read(path string, groups map[string]bool, depth int) error {
	if depth > 10 {
		return adapter.ConfigError("mysql option file %s: includes nest too deep", path)
	}
	file, err := os.Open(path)
	if err != nil {
		return adapter.ConfigError("mysql option file: %v", err)
	}
	defer file.Close()
	in := false
	sc := bufio.NewScanner(file)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasPrefix(line, "!includedir"):
			dir := strings.TrimSpace(strings.TrimPrefix(line, "!includedir"))
			names, _ := filepath.Glob(filepath.Join(dir, "*.cnf"))
			sort.Strings(names)
			for _, name := range names {
				if err := f.read(name, groups, depth+1); err != nil {
					return err
				}
			}
		case strings.HasPrefix(line, "!include"):
			if err := f.read(strings.TrimSpace(strings.TrimPrefix(line, "!include")), groups, depth+1); err != nil {
				return err
			}
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return adapter.ConfigError("mysql option file %s line %d: unclosed group name", path, n)
			}
			in = groups[strings.ToLower(strings.TrimSpace(line[1:end]))]
		case in:
			key, value, _ := strings.Cut(line, "=")
			key = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(key)), "-", "_")
			value = strings.TrimSpace(value)
			if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
				value = value[1 : len(value)-1]
			}
			f[key] = value
		}
	}
	if err := sc.Err(); err != nil {
		return adapter.ConfigError("mysql option file %s: %v", path, err)
	}
	return nil
}

// under returns o with the file's values filling what o leaves unset.
func (f fileOptions) under(o Options) Options {
	fill := func(dst *string, keys ...string) {
		for _, k := range keys {
			if v, ok := f[k]; ok && *dst == "" {
				*dst = v
			}
		}
	}
	fill(&o.Host, "host")
	fill(&o.User, "user")
	fill(&o.Passwd, "password", "passwd")
	fill(&o.DB, "database")
	fill(&o.UnixSocket, "socket")
	if o.Port == 0 {
		if p, err := strconv.Atoi(f["port"]); err == nil {
			o.Port = p
		}
	}
	if o.ConnectTimeout == 0 {
		if t, err := strconv.Atoi(f["connect_timeout"]); err == nil {
			o.ConnectTimeout = t
		}
	}
	return o
}
