package credentials

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the worker when the server dies (even
// by kill -9), instead of it finishing hashes nobody will read: the end of
// its input would stop it too, but only after the jobs it is running.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
