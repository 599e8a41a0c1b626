package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/tapbridge/tapbridge/bridge"
)

// Version is the tapbridge release this command belongs to.
const Version = "0.1.0"

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the operation failed
	exitUsage = 2 // the command line is wrong
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, let a second one kill the process the
		// default way, in case cleaning up hangs.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) int
}

// commands lists the subcommands in the order the usage shows them.
var commands = []command{
	{"up", "create (or check and repair) a VM's TAPs on a bridge", runUp},
	{"activate", "make a VM's staged NICs forward (live migration switchover)", runActivate},
	{"down", "delete VMs' TAPs (no bridge needed)", runDown},
	{"ls", "list the VMs' TAPs and their state", runLs},
	{"verify", "check that a VM's TAPs are intact", runVerify},
	{"bind", "bind addresses to a VM's NIC, or unbind them (the guard)", runBind},
	{"dhcp-script", "dnsmasq's --dhcp-script: bind leases to the guests' NICs", runDHCPScript},
	{"gc", "reclaim the TAPs of VMs that are not live", runGC},
	{"demo", "provision, crash, collect and delete VMs in a throwaway namespace", runDemo},
	{"version", "print the version", runVersion},
}

const mainUsage = `Usage: tapbridge COMMAND [flags]

tapbridge gives virtual machines TAP-on-bridge networking: it creates one TAP
per VM NIC on an existing Linux bridge, removes them, and reclaims the TAPs
that crashed VMs leave behind.

Commands:
%s
Run 'tapbridge COMMAND --help' for the flags of a command. Exit status: 0 on
success, 1 when the operation fails, 2 when the command line is wrong.
`

func printMainUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, mainUsage, b.String())
}

// env is what a subcommand writes to.
type env struct {
	stdout, stderr io.Writer
}

// run is the whole command: it parses args (without the program name),
// runs the subcommand and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "tapbridge: no command; see 'tapbridge --help'")
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		printMainUsage(stdout)
		return exitOK
	case "help":
		if len(rest) == 0 {
			printMainUsage(stdout)
			return exitOK
		}
		name, rest = rest[0], []string{"--help"}
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, e, rest)
		}
	}
	if strings.HasPrefix(name, "-") {
		fmt.Fprintf(stderr, "tapbridge: flag %s before the command; see 'tapbridge --help'\n", name)
	} else {
		fmt.Fprintf(stderr, "tapbridge: unknown command %q; see 'tapbridge --help'\n", name)
	}
	return exitUsage
}

// usageError is a wrong command line: exit status 2.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// cmdFlags is a subcommand's flag set with its usage text.
type cmdFlags struct {
	*flag.FlagSet
	synopsis string // "up --bridge BR --vm ID [flags]"
	about    string // a paragraph
}

func newFlags(name, synopsis, about string) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, synopsis: synopsis, about: about}
}

// printUsage writes the subcommand's usage, with GNU-style double-dash
// flag names (the flag package accepts both), wrapped to 80 columns.
func (f *cmdFlags) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: tapbridge %s\n\n%s\n\nFlags:\n", f.synopsis, f.about)
	f.VisitAll(func(fl *flag.Flag) {
		arg, usage := flag.UnquoteUsage(fl)
		if _, isBool := fl.Value.(interface{ IsBoolFlag() bool }); isBool {
			arg = ""
		}
		head := "  --" + fl.Name
		if arg != "" {
			head += " " + arg
		}
		switch def := fl.DefValue; def {
		case "", "false", "0", "0s":
		default:
			usage += " (default " + def + ")"
		}
		writeWrapped(w, head, usage)
	})
	writeWrapped(w, "  --help", "print this help")
}

// writeWrapped writes head, then text in a column from 24 to 80.
func writeWrapped(w io.Writer, head, text string) {
	const col, width = 24, 80
	line := head
	if len(head) >= col-1 {
		fmt.Fprintln(w, head)
		line = ""
	}
	line += strings.Repeat(" ", col-len(line))
	n := 0
	for word := range strings.FieldsSeq(text) {
		if n > 0 && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line, n = strings.Repeat(" ", col), 0
		}
		if n > 0 {
			line += " "
		}
		line += word
		n++
	}
	fmt.Fprintln(w, line)
}

// parse parses args. It returns done=true with the exit status when the
// command must stop here: after --help (0) or a bad command line (2).
func (f *cmdFlags) parse(e *env, args []string) (done bool, code int) {
	err := f.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.printUsage(e.stdout)
		return true, exitOK
	case err != nil:
		return true, f.usageErr(e, err)
	case f.NArg() > 0:
		return true, f.usageErr(e, usagef("unexpected argument %q", f.Arg(0)))
	}
	return false, exitOK
}

// usageErr prints a one-line usage error with a hint and returns 2.
func (f *cmdFlags) usageErr(e *env, err error) int {
	fmt.Fprintf(e.stderr, "tapbridge %s: %s; see 'tapbridge %s --help'\n", f.Name(), oneLine(err.Error()), f.Name())
	return exitUsage
}

// isSet reports whether the flag was given on the command line.
func (f *cmdFlags) isSet(name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			set = true
		}
	})
	return set
}

// finish turns a subcommand's error into its exit status: usage errors
// (and the library's invalid-argument errors, which come from flag values)
// exit 2, anything else 1. The first line of the message follows
// "tapbridge: "; further lines (a Verify difference list, joined errors)
// are indented below it.
func (f *cmdFlags) finish(e *env, err error) int {
	var u *usageError
	if errors.As(err, &u) {
		return f.usageErr(e, err)
	}
	if err == nil {
		return exitOK
	}
	msg := err.Error()
	if errors.Is(err, bridge.ErrInvalidArgument) {
		first, _, _ := strings.Cut(msg, "\n")
		fmt.Fprintf(e.stderr, "tapbridge %s: %s; see 'tapbridge %s --help'\n", f.Name(), first, f.Name())
		return exitUsage
	}
	if errors.Is(err, os.ErrPermission) {
		msg += " (tapbridge needs root, or CAP_NET_ADMIN)"
	}
	printErr(e.stderr, msg)
	return exitFail
}

// printErr prints "tapbridge: " and the first line of msg, then its other
// lines indented.
func printErr(w io.Writer, msg string) {
	first, rest, _ := strings.Cut(msg, "\n")
	fmt.Fprintf(w, "tapbridge: %s\n", first)
	for l := range strings.SplitSeq(rest, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func runVersion(_ context.Context, e *env, args []string) int {
	f := newFlags("version", "version", "Print the version of tapbridge and of the Go toolchain that built it.")
	if done, code := f.parse(e, args); done {
		return code
	}
	fmt.Fprintf(e.stdout, "tapbridge %s (%s %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
