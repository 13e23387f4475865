/* Helpers shared by the Check suites: start test targets and memdissect as real processes,
 * talk to them through pipes, read /proc about them. Every wait has a deadline, so a target or
 * a memdissect that hangs fails the test instead of stalling the suite. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <grp.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "live.h"
#include "target_impl.h"
#include "tests.h"

/* How long a target may take to print "ready". */
#define READY_TIMEOUT_MS 20000

/* An absolute name is a program outside the test targets (python3, a server). */
const char *md_test_target_path(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("MD_TARGETS");
	if (!dir || !*dir)
		dir = "build/targets";
	int n = name[0] == '/' ? snprintf(buf, len, "%s", name) : snprintf(buf, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len)
		return NULL;
	return buf;
}

const char *md_test_memdissect(void)
{
	const char *path = getenv("MEMDISSECT");
	return path && *path ? path : "./memdissect";
}

bool md_test_sanitized(void)
{
	const char *s = getenv("MD_SANITIZED");
	return s && *s && strcmp(s, "0") != 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* In a freshly forked child: die with the test process (a failed or timed-out test must not
 * leave targets behind), restore what the test process changed, then exec. Never returns. */
static void exec_child(const char *path, char *const *argv)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	signal(SIGPIPE, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv(path, argv);
	dprintf(2, "exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

/* Reads one byte from fd, waiting until the deadline: 1 got it, 0 EOF, -1 timeout or error.
 * Byte by byte on purpose: nothing past the line asked for is consumed, so the pipe needs no
 * buffer outside struct md_test_proc. */
static int read_byte(int fd, char *c, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left < 0)
			left = 0;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)(left > INT_MAX ? INT_MAX : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t n = read(fd, c, 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -1;
		return n == 1 ? 1 : 0;
	}
}

/* Reads one line (without its newline) into a malloc'd string; NULL at EOF, timeout or OOM. */
static char *read_line(int fd, long long deadline)
{
	size_t len = 0, cap = 128;
	char *line = malloc(cap);
	if (!line)
		return NULL;
	for (;;) {
		char c;
		int r = read_byte(fd, &c, deadline);
		if (r <= 0 && len == 0) {
			free(line);
			return NULL;
		}
		if (r <= 0 || c == '\n')
			break;
		if (len + 2 > cap) {
			char *bigger = realloc(line, cap * 2);
			if (!bigger) {
				free(line);
				return NULL;
			}
			line = bigger;
			cap *= 2;
		}
		line[len++] = c;
	}
	line[len] = 0;
	return line;
}

static bool append(char **text, size_t *len, const char *add, size_t add_len)
{
	char *bigger = realloc(*text, *len + add_len + 1);
	if (!bigger)
		return false;
	memcpy(bigger + *len, add, add_len);
	*len += add_len;
	bigger[*len] = 0;
	*text = bigger;
	return true;
}

bool md_test_proc_start(struct md_test_proc *p, const char *name, const char *const *args)
{
	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->out_fd = p->in_fd = -1;
	char path[PATH_MAX];
	if (!md_test_target_path(name, path, sizeof(path)))
		return false;
	/* Writing a command to a target that died must fail the test, not kill it with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);

	size_t argc = 0;
	while (args && args[argc])
		argc++;
	char **argv = calloc(argc + 2, sizeof(*argv));
	if (!argv)
		return false;
	argv[0] = (char *)name;
	for (size_t i = 0; i < argc; i++)
		argv[i + 1] = (char *)args[i];

	int out[2], in[2];
	if (pipe2(out, O_CLOEXEC) != 0) {
		free(argv);
		return false;
	}
	if (pipe2(in, O_CLOEXEC) != 0) {
		close(out[0]);
		close(out[1]);
		free(argv);
		return false;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		exec_child(path, argv);
	}
	free(argv);
	close(in[0]);
	close(out[1]);
	if (pid < 0) {
		close(in[1]);
		close(out[0]);
		return false;
	}
	p->pid = pid;
	p->out_fd = out[0];
	p->in_fd = in[1];

	long long deadline = now_ms() + READY_TIMEOUT_MS;
	size_t len = 0;
	p->truth = calloc(1, 1);
	for (;;) {
		char *line = p->truth ? read_line(p->out_fd, deadline) : NULL;
		if (!line) {
			fprintf(stderr, "target %s (pid %d) did not print \"ready\"\n", name, (int)pid);
			md_test_proc_stop(p);
			return false;
		}
		bool ready = strcmp(line, "ready") == 0;
		bool ok = append(&p->truth, &len, line, strlen(line)) && append(&p->truth, &len, "\n", 1);
		free(line);
		if (!ok) {
			md_test_proc_stop(p);
			return false;
		}
		if (ready)
			return true;
	}
}

bool md_test_truth_u64(const struct md_test_proc *p, const char *key, unsigned long long *v)
{
	size_t kl = strlen(key);
	for (const char *line = p->truth; line && *line;) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
			char *end;
			errno = 0;
			unsigned long long x = strtoull(line + kl + 1, &end, 0);
			if (errno || end == line + kl + 1)
				return false;
			*v = x;
			return true;
		}
		const char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

char *md_test_proc_wait_line(struct md_test_proc *p, const char *prefix, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	size_t pl = strlen(prefix);
	for (;;) {
		char *line = read_line(p->out_fd, deadline);
		if (!line || strncmp(line, prefix, pl) == 0)
			return line;
		free(line);
	}
}

unsigned long long md_test_proc_ask_u64(struct md_test_proc *p, const char *cmd, const char *prefix)
{
	ck_assert(dprintf(p->in_fd, "%s\n", cmd) > 0);
	char *line = md_test_proc_wait_line(p, prefix, 5000);
	ck_assert_msg(line != NULL, "the target does not answer \"%s\"", cmd);
	unsigned long long n = strtoull(line + strlen(prefix), NULL, 10);
	free(line);
	return n;
}

void md_test_proc_stop(struct md_test_proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		/* Until it is reaped: a test that traces the target sees ptrace stops first. */
		for (;;) {
			int status;
			pid_t w = waitpid(p->pid, &status, __WALL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 || WIFEXITED(status) || WIFSIGNALED(status))
				break;
		}
	}
	if (p->in_fd >= 0)
		close(p->in_fd);
	if (p->out_fd >= 0)
		close(p->out_fd);
	free(p->truth);
	p->pid = -1;
	p->in_fd = p->out_fd = -1;
	p->truth = NULL;
}

/* Drains both pipes until EOF on both or the deadline; true if both reached EOF. */
static bool collect(int out_fd, int err_fd, char **out, size_t *out_len, char **err, size_t *err_len,
		    long long deadline)
{
	struct pollfd pfd[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
	char **text[2] = {out, err};
	size_t *len[2] = {out_len, err_len};
	int open_fds = 2;
	while (open_fds > 0) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return false;
		int r = poll(pfd, 2, (int)(left > INT_MAX ? INT_MAX : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return false;
		for (int i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			char buf[65536];
			ssize_t n = read(pfd[i].fd, buf, sizeof(buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				pfd[i].fd = -1;
				open_fds--;
				continue;
			}
			if (!append(text[i], len[i], buf, (size_t)n))
				return false;
		}
	}
	return true;
}

int md_test_run(const char *const *args, char **out, char **err, int timeout_ms)
{
	if (out)
		*out = NULL;
	if (err)
		*err = NULL;
	const char *path = md_test_memdissect();
	size_t argc = 0;
	while (args && args[argc])
		argc++;
	char **argv = calloc(argc + 2, sizeof(*argv));
	if (!argv)
		return -1;
	argv[0] = (char *)path;
	for (size_t i = 0; i < argc; i++)
		argv[i + 1] = (char *)args[i];

	int o[2], e[2];
	if (pipe2(o, O_CLOEXEC) != 0) {
		free(argv);
		return -1;
	}
	if (pipe2(e, O_CLOEXEC) != 0) {
		close(o[0]);
		close(o[1]);
		free(argv);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(o[1], 1);
		dup2(e[1], 2);
		exec_child(path, argv);
	}
	free(argv);
	close(o[1]);
	close(e[1]);
	if (pid < 0) {
		close(o[0]);
		close(e[0]);
		return -1;
	}
	char *out_text = calloc(1, 1), *err_text = calloc(1, 1);
	size_t out_len = 0, err_len = 0;
	long long deadline = now_ms() + timeout_ms;
	bool done = out_text && err_text &&
		    collect(o[0], e[0], &out_text, &out_len, &err_text, &err_len, deadline);
	close(o[0]);
	close(e[0]);
	int status = 0, result = -1;
	if (!done) {
		fprintf(stderr, "%s did not finish within %d ms: killed\n", path, timeout_ms);
		kill(pid, SIGKILL);
	}
	/* The pipes are closed at exit; the process itself can still take a moment to be reaped.
	 * A process that closed its pipes but does not exit is killed at the deadline. */
	for (;;) {
		pid_t w = waitpid(pid, &status, done ? WNOHANG : 0);
		if (w == pid)
			break;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			status = -1;
			break;
		}
		if (now_ms() >= deadline) {
			fprintf(stderr, "%s did not exit within %d ms: killed\n", path, timeout_ms);
			kill(pid, SIGKILL);
			done = false;
			continue;
		}
		usleep(1000);
	}
	if (done && status != -1) {
		if (WIFEXITED(status))
			result = WEXITSTATUS(status);
		else if (WIFSIGNALED(status))
			result = 128 + WTERMSIG(status); /* as a shell reports it: a crash shows as 134, 139 */
	}
	if (out)
		*out = out_text;
	else
		free(out_text);
	if (err)
		*err = err_text;
	else
		free(err_text);
	return result;
}

struct md_node *md_test_attach_json(pid_t pid, const char *const *extra, int *status_ret)
{
	const char *args[64];
	size_t n = 0;
	char pid_text[32];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)pid);
	args[n++] = "attach";
	args[n++] = "--json";
	/* Options before the PID: "attach [options] PID" is the documented order. */
	for (size_t i = 0; extra && extra[i] && n < sizeof(args) / sizeof(args[0]) - 2; i++)
		args[n++] = extra[i];
	args[n++] = pid_text;
	args[n] = NULL;

	char *out = NULL, *err = NULL;
	int status = md_test_run(args, &out, &err, md_test_sanitized() ? 120000 : 60000);
	if (status_ret)
		*status_ret = status;
	struct md_node *root = NULL;
	if (out && *out) {
		struct md_error *perr = md_node_parse_json(out, strlen(out), &root);
		if (perr) {
			fprintf(stderr, "memdissect attach --json %d: output is not JSON: %s\n", (int)pid,
				perr->message ? perr->message : "?");
			md_error_destroy(perr);
			root = NULL;
		}
	}
	if (!root || status != 0)
		fprintf(stderr, "memdissect attach --json %d: status %d, stderr: %s\n", (int)pid, status,
			err ? err : "");
	free(out);
	free(err);
	return root;
}

/* Reads a small /proc file whole; NULL when it cannot be read. */
static char *read_small_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	while (buf) {
		if (len + 1 >= cap) {
			char *bigger = realloc(buf, cap * 2);
			if (!bigger) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			buf = NULL;
			break;
		}
		if (n == 0) {
			buf[len] = 0;
			break;
		}
		len += (size_t)n;
	}
	close(fd);
	return buf;
}

unsigned long long md_test_status_bytes(pid_t pid, const char *field)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	char *text = read_small_file(path);
	if (!text)
		return UINT64_MAX;
	unsigned long long v = UINT64_MAX;
	size_t fl = strlen(field);
	for (char *line = text; line && *line;) {
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			char *end;
			unsigned long long kb = strtoull(line + fl + 1, &end, 10);
			if (end != line + fl + 1)
				v = kb * 1024ULL;
			break;
		}
		char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return v;
}

char md_test_proc_state(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *text = read_small_file(path);
	if (!text)
		return 0;
	/* comm may hold spaces and parentheses: the state follows the last ')'. */
	char *close_paren = strrchr(text, ')');
	char state = close_paren && close_paren[1] == ' ' ? close_paren[2] : 0;
	free(text);
	return state;
}

/* Whether this environment lets us ptrace at all (a container without CAP_SYS_PTRACE under a
 * seccomp policy, Yama 3): the only reason these tests may skip. NULL when possible. */
void md_test_skip(bool required, const char *test, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* START_TEST(name) defines name_fn: show the test's own name. */
	char name[128];
	snprintf(name, sizeof(name), "%s", test);
	size_t nl = strlen(name);
	if (nl > 3 && strcmp(name + nl - 3, "_fn") == 0)
		name[nl - 3] = 0;
	test = name;
	const char *ci = getenv("CI");
	bool fail = required && ci && strcmp(ci, "true") == 0;
	fprintf(stderr, "%s: skipped%s: %s\n", test, fail ? " (CI=true: a required test may not skip)" : "", why);
	const char *log = getenv("MD_SKIP_LOG");
	if (log) {
		int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0) {
			char line[640];
			int n = snprintf(line, sizeof(line), "%s%s: %s\n",
					 fail ? "(failed: CI=true) " : required ? "" : "(optional) ", test, why);
			if (n > 0 && write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
				n = 0;
			close(fd);
		}
	}
	if (fail)
		ck_abort_msg("%s: skipped under CI=true: %s", test, why);
}

const char *md_test_ptrace_impossible(void)
{
	static char why[160];
	pid_t child = fork();
	if (child < 0)
		return "fork failed";
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		for (;;)
			pause();
	}
	const char *result = NULL;
	if (ptrace(PTRACE_SEIZE, child, 0, 0) != 0) {
		snprintf(why, sizeof(why), "PTRACE_SEIZE of our own child: %s", strerror(errno));
		result = why;
	}
	kill(child, SIGKILL);
	while (waitpid(child, NULL, __WALL) < 0 && errno == EINTR)
		;
	return result;
}

struct md_node *md_test_allocator(struct md_node *report, const char *name)
{
	struct md_node *arr = md_node_get(report, "allocators");
	for (size_t i = 0; i < md_node_count(arr); i++) {
		struct md_node *a = md_node_at(arr, i);
		const char *n = md_node_get_string(md_node_get(a, "name"));
		if (n && strcmp(n, name) == 0)
			return a;
	}
	return NULL;
}

uint64_t md_test_json_u64(struct md_node *n, const char *path)
{
	struct md_node *v = md_node_path(n, path);
	ck_assert_msg(v != NULL, "JSON has no %s", path);
	return md_node_get_u64(v);
}

unsigned long long md_test_truth(const struct md_test_proc *p, const char *key)
{
	unsigned long long v = 0;
	ck_assert_msg(md_test_truth_u64(p, key, &v), "target printed no %s", key);
	return v;
}

void md_test_check_classes_sum(struct md_node *report)
{
	static const char *const classes[] = { "live", "free", "metadata", "stack", "file", "shared", "anon_other" };
	uint64_t sum = 0;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		char path[64];
		snprintf(path, sizeof(path), "classes.%s", classes[i]);
		sum += md_test_json_u64(report, path);
	}
	uint64_t rss = md_test_json_u64(report, "memory.rss_bytes");
	ck_assert_msg(sum == rss, "classes sum to %llu, rss_bytes is %llu", (unsigned long long)sum,
		      (unsigned long long)rss);
}

/* ---- memdissect in the background, its output collected ---- */

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}


static void append_text(char **text, size_t *len, const char *add, size_t n)
{
	char *bigger = realloc(*text, *len + n + 1);
	ck_assert_msg(bigger != NULL, "out of memory");
	memcpy(bigger + *len, add, n);
	*len += n;
	bigger[*len] = 0;
	*text = bigger;
}

bool md_test_become_nobody(void)
{
	return setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0 && getuid() == 65534 &&
	       geteuid() == 65534;
}

/* Starts argv[0] = exe (or $MEMDISSECT) with args. */
void md_test_bg_start(struct md_test_bg *r, const char *const *args, const struct md_test_bg_options *o)
{
	memset(r, 0, sizeof(*r));
	r->out_fd = r->err_fd = -1;
	const char *path = o && o->exe ? o->exe : md_test_memdissect();
	ck_assert_msg(access(path, X_OK) == 0, "memdissect not found at %s (set $MEMDISSECT)", path);
	char *argv[64];
	size_t n = 0;
	argv[n++] = (char *)path;
	for (size_t i = 0; args[i] && n < 63; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	int o_pipe[2], e_pipe[2];
	ck_assert(pipe2(o_pipe, O_CLOEXEC) == 0 && pipe2(e_pipe, O_CLOEXEC) == 0);
	signal(SIGPIPE, SIG_IGN);
	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	ck_assert(r->out && r->err);
	r->started_ms = now_ms();
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		if (o && o->as_nobody && !md_test_become_nobody()) {
			dprintf(2, "cannot become nobody: %s\n", strerror(errno));
			_exit(126);
		}
		/* After setuid: changing credentials clears the parent-death signal. */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (size_t i = 0; o && o->env && o->env[i]; i++)
			putenv((char *)o->env[i]);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(o_pipe[1], 1);
		dup2(e_pipe[1], 2);
		execv(path, argv);
		dprintf(2, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(o_pipe[1]);
	close(e_pipe[1]);
	r->pid = pid;
	r->out_fd = o_pipe[0];
	r->err_fd = e_pipe[0];
}

/* One round of reading whatever is available, waiting at most timeout_ms for something. */
void md_test_bg_pump(struct md_test_bg *r, int timeout_ms)
{
	struct pollfd pfd[2] = {{.fd = r->out_fd, .events = POLLIN}, {.fd = r->err_fd, .events = POLLIN}};
	if (r->out_fd < 0 && r->err_fd < 0) {
		sleep_ms(timeout_ms < 5 ? timeout_ms : 5);
		return;
	}
	if (poll(pfd, 2, timeout_ms < 0 ? 0 : timeout_ms) <= 0)
		return;
	for (int i = 0; i < 2; i++) {
		if (pfd[i].fd < 0 || !pfd[i].revents)
			continue;
		char buf[65536];
		ssize_t got = read(pfd[i].fd, buf, sizeof(buf));
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0) {
			close(pfd[i].fd);
			if (i == 0)
				r->out_fd = -1;
			else
				r->err_fd = -1;
			continue;
		}
		if (i == 0)
			append_text(&r->out, &r->out_len, buf, (size_t)got);
		else
			append_text(&r->err, &r->err_len, buf, (size_t)got);
	}
}

bool md_test_has_line_with(const char *text, const char *needle)
{
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		if (!nl)
			return false;
		const char *hit = strstr(line, needle);
		if (hit && hit < nl)
			return true;
		line = nl + 1;
	}
	return false;
}

bool md_test_bg_wait_stderr(struct md_test_bg *r, const char *needle, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	while (!md_test_has_line_with(r->err, needle)) {
		long long left = deadline - now_ms();
		if (left <= 0 || r->err_fd < 0)
			return false;
		md_test_bg_pump(r, (int)(left > 100 ? 100 : left));
	}
	return true;
}

/* Reads until both pipes end and the process exits. The exit code, 128+signal when it died of
 * a signal, or -1 when it had to be killed at the deadline (a hang). */
int md_test_bg_finish(struct md_test_bg *r, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	int status = 0;
	for (;;) {
		pid_t w = waitpid(r->pid, &status, WNOHANG);
		if (w == r->pid) {
			long long drain_end = now_ms() + 1000;
			while ((r->out_fd >= 0 || r->err_fd >= 0) && now_ms() < drain_end)
				md_test_bg_pump(r, 50);
			break;
		}
		if (w < 0 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline) {
			fprintf(stderr, "memdissect (pid %d) still running after %d ms: killed\nstderr: %s\n", (int)r->pid,
				timeout_ms, r->err);
			kill(r->pid, SIGKILL);
			while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
				;
			r->pid = -1;
			return -1;
		}
		md_test_bg_pump(r, 20);
	}
	r->pid = -1;
	if (WIFSIGNALED(status)) {
		r->signaled = true;
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

void md_test_bg_free(struct md_test_bg *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (r->out_fd >= 0)
		close(r->out_fd);
	if (r->err_fd >= 0)
		close(r->err_fd);
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
	r->out_fd = r->err_fd = -1;
}

struct md_node *md_test_attach_ok(pid_t pid, const char *what)
{
	int status = -1;
	struct md_node *report = md_test_attach_json(pid, NULL, &status);
	ck_assert_msg(report != NULL, "%s: no JSON report (status %d)", what, status);
	ck_assert_msg(status == 0, "%s: memdissect exited with %d", what, status);
	return report;
}

/* ---- glibc ground truth (tests/targets/glibc_truth.c) ---- */

static const char *const mallinfo_fields[] = {
	"arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
};

/* mallinfo of the report against "<prefix>mallinfo.<field> N" lines. */
void md_test_check_mallinfo(struct md_node *glibc, const struct md_test_proc *p, const char *prefix,
			   const char *mode)
{
	for (size_t i = 0; i < sizeof(mallinfo_fields) / sizeof(mallinfo_fields[0]); i++) {
		char key[96], path[96];
		snprintf(key, sizeof(key), "%smallinfo.%s", prefix, mallinfo_fields[i]);
		snprintf(path, sizeof(path), "mallinfo.%s", mallinfo_fields[i]);
		unsigned long long want = md_test_truth(p, key);
		uint64_t got = md_test_json_u64(glibc, path);
		ck_assert_msg(got == want, "%s: mallinfo.%s is %llu, glibc says %llu", mode, mallinfo_fields[i],
			      (unsigned long long)got, want);
	}
}

/* "key N" from a line such as "trim_drop_pages 12". */
static long long line_value(const char *line, const char *key)
{
	size_t kl = strlen(key);
	ck_assert_msg(line && strncmp(line, key, kl) == 0, "expected a %s line, got %s", key, line ? line : "nothing");
	return strtoll(line + kl, NULL, 10);
}

/* After "trim", the target prints the drop and a fresh mallinfo2; collect them as truth text. */
void md_test_trim_and_compare(struct md_test_proc *p, uint64_t predicted, const char *mode)
{
	md_test_trim_and_compare_slack(p, predicted, mode, 0);
}

void md_test_trim_and_compare_slack(struct md_test_proc *p, uint64_t predicted, const char *mode, unsigned slack_pages)
{
	ck_assert_int_eq(write(p->in_fd, "trim\n", 5), 5);
	char *line = md_test_proc_wait_line(p, "trim_drop_pages", 30000);
	long long dropped = line_value(line, "trim_drop_pages");
	free(line);
	long long diff = (long long)predicted - dropped;
	if (diff < 0)
		diff = -diff;
	fprintf(stderr, "glibc %s: trim predicted %llu pages, measured %lld\n", mode, (unsigned long long)predicted,
		dropped);
	ck_assert_msg(diff * 100 <= dropped || diff <= (long long)slack_pages,
		      "%s: malloc_trim predicted %llu pages, the RSS dropped by %lld", mode, (unsigned long long)predicted,
		      dropped);

	/* The "after." mallinfo lines become the truth for a second attach. */
	free(p->truth);
	p->truth = calloc(1, 1);
	size_t len = 0;
	for (;;) {
		line = md_test_proc_wait_line(p, "", 30000);
		ck_assert_msg(line != NULL, "%s: target stopped talking after trim", mode);
		bool done = strcmp(line, "trimmed") == 0;
		size_t ll = strlen(line);
		char *bigger = realloc(p->truth, len + ll + 2);
		ck_assert(bigger != NULL);
		p->truth = bigger;
		memcpy(p->truth + len, line, ll);
		len += ll;
		p->truth[len++] = '\n';
		p->truth[len] = 0;
		free(line);
		if (done)
			break;
	}
}


bool md_test_corrupt_finding_at(struct md_node *report, const char *allocator, uint64_t addr, const char *rule)
{
	struct md_node *f = md_node_get(report, "findings");
	for (size_t i = 0; i < md_node_count(f); i++) {
		struct md_node *x = md_node_at(f, i);
		const char *a = md_node_get_string(md_node_get(x, "allocator"));
		const char *sev = md_node_get_string(md_node_get(x, "severity"));
		const char *msg = md_node_get_string(md_node_get(x, "message"));
		if (a && strcmp(a, allocator) == 0 && sev && strcmp(sev, "corrupt") == 0 && (!rule || (msg && strstr(msg, rule))) &&
		    md_node_get_u64(md_node_get(x, "address")) == addr)
			return true;
	}
	return false;
}

double md_test_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *md_test_capture(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, len = 0, n;
	char *buf = malloc(cap);
	while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 4096) {
			char *bigger = realloc(buf, cap * 2);
			if (!bigger) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = bigger;
			cap *= 2;
		}
	}
	pclose(f);
	if (buf)
		buf[len] = 0;
	return buf;
}

struct md_target *md_test_live_stopped(pid_t pid, bool debuginfo_disabled, struct md_live_capture *cap)
{
	struct md_live_options opts = { .debuginfo_disabled = debuginfo_disabled };
	struct md_target *t = NULL;
	struct md_error *err = md_live_open(pid, &opts, &t);
	ck_assert_msg(!err, "md_live_open: %s", err ? err->message : "");
	err = md_live_stop(t);
	if (!err)
		err = md_live_capture(t, cap);
	ck_assert_msg(!err, "stop/capture: %s", err ? err->message : "");
	return t;
}

void md_test_live_release(struct md_target *t, struct md_live_capture *cap)
{
	md_live_capture_deinit(cap);
	md_live_detach(t);
	md_target_destroy(t);
}
