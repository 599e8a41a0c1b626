// Package ipbatch drives iproute2 through one long-lived `ip -batch`
// process, the way a shell-script integration would do it at its best: one
// process and one netlink socket for every command.
package ipbatch

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// sentinel is written after each group of commands: it always succeeds and
// prints exactly one line (with -o), which tells that everything before it
// was processed. lo is ifindex 1 in every namespace.
const (
	sentinel     = "link show dev lo\n"
	sentinelLine = "1: lo:"
)

// Proc is one `ip -o -force -batch -` process. It is not safe for
// concurrent use.
type Proc struct {
	cmd *exec.Cmd
	in  *bufio.Writer
	inf *os.File
	out *bufio.Reader
	ouf *os.File
}

// Start starts ip inside the network namespace at nsPath (through
// nsenter, which execs ip: the process is ip itself).
func Start(nsPath string) (*Proc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command("nsenter", "--net="+nsPath, "--", "ip", "-o", "-force", "-batch", "-")
	cmd.Stdin = inR
	// One pipe for both: an error message comes before the sentinel's line.
	cmd.Stdout = outW
	cmd.Stderr = outW
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	return &Proc{cmd: cmd, in: bufio.NewWriter(inW), inf: inW, out: bufio.NewReaderSize(outR, 64<<10), ouf: outR}, nil
}

// Run sends the commands (without trailing newlines) and waits until ip has
// processed them all. It returns what ip printed for the failed ones.
func (p *Proc) Run(cmds ...string) error {
	for _, c := range cmds {
		p.in.WriteString(c)
		p.in.WriteByte('\n')
	}
	p.in.WriteString(sentinel)
	if err := p.in.Flush(); err != nil {
		return fmt.Errorf("ip batch: %w", err)
	}
	var msgs []string
	for {
		line, err := p.out.ReadString('\n')
		if err != nil {
			return fmt.Errorf("ip batch: %w (output so far: %q)", err, msgs)
		}
		if strings.HasPrefix(line, sentinelLine) {
			break
		}
		msgs = append(msgs, strings.TrimSpace(line))
	}
	if len(msgs) > 0 {
		return fmt.Errorf("ip batch: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// Close ends the process (end of input) and waits for it. ip exits with
// status 1 if any command failed; that is not reported again here.
func (p *Proc) Close() error {
	err := p.inf.Close()
	werr := p.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(werr, &ee) && ee.ExitCode() == 1 {
		werr = nil
	}
	return errors.Join(err, werr, p.ouf.Close())
}
