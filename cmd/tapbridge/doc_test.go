package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docUsage returns the "Usage:" block of doc.go, command by command: each
// "tapbridge CMD ..." line with its indented continuation lines.
func docUsage(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	cur := ""
	for l := range strings.SplitSeq(string(src), "\n") {
		switch {
		case strings.HasPrefix(l, "//\ttapbridge "):
			f := strings.Fields(strings.TrimPrefix(l, "//\ttapbridge "))
			cur = f[0]
			if _, dup := out[cur]; dup {
				t.Errorf("doc.go: two usage lines for %s", cur)
			}
			out[cur] = l
		case cur != "" && strings.HasPrefix(l, "//\t    "):
			out[cur] += " " + l
		default:
			cur = ""
		}
	}
	return out
}

var flagName = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)

// TestDocMatchesHelp keeps the one manual in two places from drifting: the
// usage block of doc.go (what go doc shows) names every command, and for
// each one exactly the flags its --help lists.
func TestDocMatchesHelp(t *testing.T) {
	doc := docUsage(t)
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
		entry, ok := doc[c.name]
		if !ok {
			t.Errorf("doc.go has no usage line for command %s", c.name)
			continue
		}
		_, help, _ := tb(t, c.name, "--help")
		var helpFlags []string
		for l := range strings.SplitSeq(help, "\n") {
			if m := flagName.FindStringSubmatch(l); m != nil && strings.HasPrefix(l, "  --") && m[1] != "help" {
				helpFlags = append(helpFlags, m[1])
			}
		}
		var docFlags []string
		for _, m := range flagName.FindAllStringSubmatch(entry, -1) {
			if !slices.Contains(docFlags, m[1]) {
				docFlags = append(docFlags, m[1])
			}
		}
		slices.Sort(helpFlags)
		slices.Sort(docFlags)
		if !slices.Equal(helpFlags, docFlags) {
			t.Errorf("command %s: doc.go usage names flags %v, --help lists %v", c.name, docFlags, helpFlags)
		}
	}
	for name := range doc {
		if !slices.Contains(names, name) {
			t.Errorf("doc.go has a usage line for %s, which is no command", name)
		}
	}
}
