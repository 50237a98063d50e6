package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Paths of the binaries TestMain builds once for the whole test run.
var (
	replaylinkBin string
	backendBin    string
)

// TestMain builds the real replaylink binary and the test backend into a
// temporary directory. REPLAYLINK_FAULTS_RACE=1 builds replaylink with the
// race detector (slower, and limited to 8128 goroutines, so the 10k
// connections test then skips itself).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "replaylink-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	replaylinkBin = filepath.Join(dir, "replaylink")
	backendBin = filepath.Join(dir, "testbackend")
	args := []string{"build", "-o", replaylinkBin}
	if raceBinary {
		args = append(args, "-race")
	}
	builds := [][]string{
		append(args, "github.com/replaylink/replaylink/cmd/replaylink"),
		{"build", "-o", backendBin, "github.com/replaylink/replaylink/faults/testbackend"},
	}
	for _, b := range builds {
		cmd := exec.Command("go", b...)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "faults: go %v: %v\n%s", b, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var raceBinary = os.Getenv("REPLAYLINK_FAULTS_RACE") == "1"
