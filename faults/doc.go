// Package faults turns replaylink's promises into tests: it builds the real
// binary once per test run, drives it as a process on 127.0.0.1 ports in
// front of a small backend (testbackend), against the real search node and
// fault-injecting stand-ins, and checks conservation (every request the
// client got an answer for is indexed exactly once), liveness (fresh
// requests are indexed within seconds once faults stop), bounded memory,
// and that hostile input gets nowhere.
//
// The package holds tests only. Short forms run in `make test` (tests named
// TestOutage* in its outage phase, TestCluster* in its cluster phase against
// the three-node cluster of testenv/es/cluster.sh); `make soak` (testenv/soak.sh) runs the
// same tests with the sizes of sizes_test.go's long forms. The guarantees and
// the test of each are listed in docs/reliability.md.
package faults
