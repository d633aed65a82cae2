// Package procfs reads the few facts about processes that Latch's tests
// and benchmarks need from Linux's /proc (elsewhere they find nothing).
package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Children returns the process ids of pid's children, as its threads list
// them (nil when /proc does not know pid).
func Children(pid int) []int {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, task := range tasks {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(raw)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
