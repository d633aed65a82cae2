package store_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/config"
)

// openChildEnv makes the test binary, re-executed by
// TestConcurrentFirstStartSQLite, act as one server starting several times.
const openChildEnv = "LATCH_TEST_OPEN_CHILD"

// Several servers started at the same instant on one fresh SQLite file all
// start, and each migration is applied by exactly one of them. They run as
// separate processes: SQLite's locks collide between processes in ways they
// do not between pools of one process. Switching a new file to WAL mode takes
// a lock SQLite does not wait for, so without the lock file some of them
// fail with SQLITE_BUSY — in about a third of the rounds here, hence many
// rounds, each on its own fresh file at its own agreed instant.
func TestConcurrentFirstStartSQLite(t *testing.T) {
	if os.Getenv(openChildEnv) != "" {
		t.Skip("child process")
	}
	key, err := config.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	const servers, rounds, step = 4, 20, 200 * time.Millisecond
	base := t.TempDir()
	first := time.Now().Add(time.Second) // time for the processes to start
	outs := make([]bytes.Buffer, servers)
	errs := make([]error, servers)
	var wg sync.WaitGroup
	for i := 0; i < servers; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentFirstStartSQLiteChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), openChildEnv+"=1", "LATCH_DATA_DIR="+base,
			"LATCH_SECRET_KEY="+base64.StdEncoding.EncodeToString(key),
			"LATCH_TEST_OPEN_BASE="+base, "LATCH_TEST_OPEN_ROUNDS="+strconv.Itoa(rounds),
			"LATCH_TEST_OPEN_AT="+strconv.FormatInt(first.UnixNano(), 10),
			"LATCH_TEST_OPEN_STEP="+strconv.FormatInt(int64(step), 10))
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(i int) { defer wg.Done(); errs[i] = cmd.Wait() }(i)
	}
	wg.Wait()
	applied := make([]map[string]int, rounds)
	for r := range applied {
		applied[r] = map[string]int{}
	}
	for i := range outs {
		if errs[i] != nil {
			t.Fatalf("server %d: %v\n%s", i, errs[i], outs[i].String())
		}
		sc := bufio.NewScanner(&outs[i])
		for sc.Scan() {
			var line struct {
				Msg   string   `json:"msg"`
				Round int      `json:"round"`
				IDs   []string `json:"ids"`
				Err   string   `json:"err"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line.Msg {
			case "applied migrations":
				for _, id := range line.IDs {
					applied[line.Round][id]++
				}
			case "open failed":
				t.Errorf("round %d: server %d failed to start: %s", line.Round, i, line.Err)
			}
		}
	}
	for r := range applied {
		for _, set := range app.Migrations() {
			for _, m := range set {
				if applied[r][m.ID] != 1 {
					t.Errorf("round %d: migration %s applied %d times", r, m.ID, applied[r][m.ID])
				}
			}
		}
	}
}

// TestConcurrentFirstStartSQLiteChild is one server of the test above: each
// round, at the agreed instant, it opens the services on that round's fresh
// file as `latch serve` does (migrating), and closes them.
func TestConcurrentFirstStartSQLiteChild(t *testing.T) {
	if os.Getenv(openChildEnv) == "" {
		t.Skip("run by TestConcurrentFirstStartSQLite")
	}
	base := os.Getenv("LATCH_TEST_OPEN_BASE")
	rounds, _ := strconv.Atoi(os.Getenv("LATCH_TEST_OPEN_ROUNDS"))
	at, _ := strconv.ParseInt(os.Getenv("LATCH_TEST_OPEN_AT"), 10, 64)
	step, _ := strconv.ParseInt(os.Getenv("LATCH_TEST_OPEN_STEP"), 10, 64)
	for r := 0; r < rounds; r++ {
		env := map[string]string{"LATCH_DATABASE_URL": "sqlite://" + filepath.Join(base, strconv.Itoa(r), "latch.db")}
		cfg, err := config.Load("", func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return os.Getenv(k)
		})
		if err != nil {
			t.Fatal(err)
		}
		log := slog.New(slog.NewJSONHandler(os.Stdout, nil)).With("round", r)
		time.Sleep(time.Until(time.Unix(0, at+int64(r)*step)))
		svc, err := app.Open(context.Background(), cfg, log, true)
		if err != nil {
			log.Error("open failed", "err", fmt.Sprint(err))
			continue
		}
		svc.Close()
	}
}
