package main

import (
	"bufio"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Results is a parsed `go test -bench` output.
type Results struct {
	// Config holds the "key: value" lines (goos, cpu, kernel...).
	Config map[string]string
	// Groups are the benchmarks without their impl= element, in the order
	// they first appear.
	Groups []*Group
	// Impls lists every impl seen, in the order they first appear.
	Impls []string
}

// Group is one benchmark run by several contenders.
type Group struct {
	Name  string              // e.g. BenchmarkConfig/nics=1/cpu=2
	Units []string            // units in the order they first appear
	ByImp map[string]*Measure // by impl
	Impls []string            // impls in the order they first appear
}

// Measure holds every value reported for one benchmark, per unit (several
// with -count > 1).
type Measure struct {
	Values map[string][]float64
}

// Median returns the median of the values of unit, and false if there is
// none.
func (m *Measure) Median(unit string) (float64, bool) {
	if m == nil {
		return 0, false
	}
	v := slices.Clone(m.Values[unit])
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

var (
	configLine = regexp.MustCompile(`^([a-z][a-zA-Z0-9-]*): (.+)$`)
	procSuffix = regexp.MustCompile(`-\d+$`)
)

// Parse reads `go test -bench` output. Lines it does not recognise (logs,
// PASS, ok) are skipped. Benchmarks without an impl= element go into a
// group of their own under impl "".
func Parse(r io.Reader) (*Results, error) {
	res := &Results{Config: make(map[string]string)}
	groups := make(map[string]*Group)
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		if m := configLine.FindStringSubmatch(line); m != nil {
			if _, ok := res.Config[m[1]]; !ok {
				res.Config[m[1]] = strings.TrimSpace(m[2])
			}
			continue
		}
		name, vals, ok := parseBenchLine(line)
		if !ok {
			continue
		}
		gname, impl := splitImpl(name)
		g := groups[gname]
		if g == nil {
			g = &Group{Name: gname, ByImp: make(map[string]*Measure)}
			groups[gname] = g
			res.Groups = append(res.Groups, g)
		}
		m := g.ByImp[impl]
		if m == nil {
			m = &Measure{Values: make(map[string][]float64)}
			g.ByImp[impl] = m
			g.Impls = append(g.Impls, impl)
		}
		if !slices.Contains(res.Impls, impl) {
			res.Impls = append(res.Impls, impl)
		}
		for _, v := range vals {
			m.Values[v.unit] = append(m.Values[v.unit], v.value)
			if !slices.Contains(g.Units, v.unit) {
				g.Units = append(g.Units, v.unit)
			}
		}
	}
	return res, s.Err()
}

type value struct {
	value float64
	unit  string
}

// parseBenchLine parses "BenchmarkX/a=b-2  <N>  <v> <unit> ...".
func parseBenchLine(line string) (string, []value, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return "", nil, false
	}
	if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
		return "", nil, false
	}
	vals := make([]value, 0, (len(f)-2)/2)
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		vals = append(vals, value{v, f[i+1]})
	}
	return procSuffix.ReplaceAllString(f[0], ""), vals, true
}

// splitImpl removes the impl=X element from a benchmark name and returns
// the rest and X.
func splitImpl(name string) (group, impl string) {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		if v, ok := strings.CutPrefix(p, "impl="); ok {
			return strings.Join(slices.Delete(parts, i, i+1), "/"), v
		}
	}
	return name, ""
}
