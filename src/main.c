/* memdissect: the command line. The only place that prints errors or exits. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze.h"
#include "cgroup_report.h"
#include "live.h"
#include "memdissect/report.h"
#include "plugins.h"
#include "render.h"
#include "wss.h"

#define MEMDISSECT_VERSION "0.1.0"

/* Documented in README.md (and the usage text). 1 is for internal errors only: every error of
 * the user or the environment has its own code. */
enum exit_code {
	EXIT_OK = 0,
	EXIT_INTERNAL = 1,
	EXIT_USAGE = 2,
	EXIT_NO_PROCESS = 3,
	EXIT_PERMISSION = 4,
	EXIT_ZOMBIE = 5,
	EXIT_EXITED = 6,
	EXIT_BAD_FILE = 7,
	EXIT_UNSUPPORTED = 8,
	EXIT_OUTPUT = 9,       /* an output file cannot be written: a directory, no such directory,
				* read-only, disk full */
	EXIT_PARTIAL = 10,
	EXIT_NOMEM = 11,       /* out of memory */
	EXIT_INTERRUPTED = 130,
	EXIT_BROKEN_PIPE = 141, /* the reader of stdout went away: silent, as a process killed by SIGPIPE */
};

static bool is_broken_pipe(const struct md_error *err)
{
	return err && err->code == MD_ERR_OS && err->errnum == EPIPE;
}

/* Errors of writing an output file that are the environment's, not ours. */
static bool is_output_errno(int e)
{
	return e == ENOSPC || e == EDQUOT || e == EFBIG || e == EISDIR || e == EROFS || e == EACCES ||
	       e == EPERM || e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG || e == EIO;
}

static int exit_code_of(const struct md_error *err)
{
	switch (err->code) {
	case MD_ERR_NOMEM:
		return EXIT_NOMEM;
	case MD_ERR_USAGE:
		return EXIT_USAGE;
	case MD_ERR_NO_PROCESS:
		return EXIT_NO_PROCESS;
	case MD_ERR_PERMISSION:
		return EXIT_PERMISSION;
	case MD_ERR_ZOMBIE:
		return EXIT_ZOMBIE;
	case MD_ERR_EXITED:
		return EXIT_EXITED;
	case MD_ERR_BAD_FILE:
		return EXIT_BAD_FILE;
	case MD_ERR_UNSUPPORTED:
		return EXIT_UNSUPPORTED;
	case MD_ERR_INTERRUPTED:
		return EXIT_INTERRUPTED;
	default:
		return EXIT_INTERNAL;
	}
}

static int fail(struct md_error *err)
{
	int code = exit_code_of(err);
	if (is_broken_pipe(err)) {
		/* memdissect attach PID | head -1: nothing to say, as cat and grep */
		md_error_destroy(err);
		return EXIT_BROKEN_PIPE;
	}
	/* messages name the target's comm, files and symbols: escaped as in the report */
	fprintf(stderr, "memdissect: %s\n", err->message ? md_esc(err->message) : "error");
	md_error_destroy(err);
	return code;
}

/* An error writing an output file: the environment's (exit 9) when errno says so. */
static int fail_output(struct md_error *err)
{
	if (err && err->code == MD_ERR_OS && is_output_errno(err->errnum)) {
		fprintf(stderr, "memdissect: %s\n", err->message ? md_esc(err->message) : "error");
		md_error_destroy(err);
		return EXIT_OUTPUT;
	}
	return fail(err);
}

/* Before the target is stopped: can an output file be created at path? (a directory, a missing
 * directory or a read-only one fail here, not after the pause.) */
static struct md_error *check_output_path(const char *what, const char *path)
{
	struct stat st;
	if (!path[0])
		return md_error_os(ENOENT, "%s: empty file name", what);
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return md_error_os(EISDIR, "%s %s", what, path);
		if (access(path, W_OK) != 0)
			return md_error_os(errno, "%s %s", what, path);
		return NULL;
	}
	if (errno != ENOENT)
		return md_error_os(errno, "%s %s", what, path);
	char *dir = strdup(path);
	if (!dir)
		return &md_error_nomem;
	char *slash = strrchr(dir, '/');
	const char *d = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
	struct md_error *err = NULL;
	if (stat(d, &st) != 0)
		err = md_error_os(errno, "%s %s: directory %s", what, path, d);
	else if (!S_ISDIR(st.st_mode))
		err = md_error_os(ENOTDIR, "%s %s: %s", what, path, d);
	else if (access(d, W_OK | X_OK) != 0)
		err = md_error_os(errno, "%s %s: directory %s", what, path, d);
	free(dir);
	return err;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: memdissect attach [options] PID\n"
		"       memdissect watch [options] --interval S [--count N] [--wss W] PID\n"
		"       memdissect watch [options] --textfile DIR --interval S [--count N] PID [PID...]\n"
		"       memdissect diff [options] A.json B.json\n"
		"       memdissect core [options] [--exe PATH] [--sysroot DIR] COREFILE\n"
		"       memdissect snapshot [--debuginfo=MODE] [--copy MODE] [--max-pause S] -o FILE PID\n"
		"       memdissect cgroup [options] [--attach] PATH | --pid PID\n"
		"       memdissect system [options]\n"
		"       memdissect plugins\n"
		"       memdissect --help | --version\n"
		"\n"
		"attach: stop every thread of PID briefly, account for every resident page\n"
		"        (live heap, free, allocator metadata, stack, file, shared, other anonymous)\n"
		"        and explain the gap between the heap and RSS.\n"
		"watch: attach every S seconds (N times, or until Ctrl-C); a table of live heap, free,\n"
		"       RSS and gap, and a verdict from the fitted slopes\n"
		"diff:  what changed between two `attach --json` reports, per class, allocator and region\n"
		"core:  the same report from an ELF core (kernel core, gdb gcore or memdissect snapshot)\n"
		"snapshot: stop PID briefly and write a sparse ELF core FILE (gdb and eu-stack open it)\n"
		"       that `memdissect core FILE` turns into the report of that moment\n"
		"cgroup: a memory cgroup's usage part by part, its processes, the OOM picture (docs/cgroup.md)\n"
		"system: /proc/meminfo explained, the top processes by PSS and USS, every memory cgroup\n"
		"\n"
		"options:\n"
		"  --json              JSON report (docs/json.md; watch: a JSON line per sample)\n"
		"  --format FMT        text (default), json, or openmetrics (node-exporter textfile)\n"
		"  --color, --no-color colour in the text report (default: when stdout is a tty)\n"
		"  --debuginfo=MODE    auto (default): use debug info when found; off: never\n"
		"  --offline           never ask a debuginfod server (default: ask the servers in\n"
		"                      $DEBUGINFOD_URLS before the pause, 10 s timeout)\n"
		"  --plugin NAME       use only this allocator plugin (memdissect plugins lists them)\n"
		"  --top N             mappings (cgroup, system: processes) listed in the text report\n"
		"  --map               the full drainability map (default: a summary)\n"
		"  --html FILE         write a self-contained HTML report to FILE (watch: the trends of\n"
		"                      every sample, the fitted slopes and the verdict, rewritten each sample)\n"
		"  --wss S             after the attach, the working set over S seconds: clears the target's\n"
		"                      page referenced bits (its page-aging state, not its memory; docs/cgroup.md)\n"
		"  --interval S        watch: seconds between attaches (at least 0.1)\n"
		"  --count N           watch: stop after N attaches (default: until Ctrl-C)\n"
		"  --textfile DIR      watch: each round replaces DIR/memdissect.prom with the OpenMetrics\n"
		"                      series of every PID (node exporter textfile collector; docs/metrics.md)\n"
		"  --exe PATH          core: the executable, checked against the core's build-id\n"
		"  --sysroot DIR       core: where the core's libraries are\n"
		"  -o, --output FILE   snapshot: the core file to write\n"
		"  --copy MODE         snapshot: where resident pages go during the pause: memory, stream\n"
		"                      (to the file) or auto (default)\n"
		"  --max-pause S       snapshot: refuse when the pause is estimated longer (default 2; none)\n"
		"  --pid PID           cgroup: the memory cgroup of PID\n"
		"  --attach            cgroup: also attach to each member (one at a time) for its classes\n"
		"  --hold-pause MS     keep the target stopped MS ms longer (for tests of memdissect itself)\n"
		"  -h, --help          this text\n"
		"\n"
		"exit codes: 0 ok, 1 internal error, 2 usage, 3 no such process, 4 permission denied,\n"
		"            5 zombie, 6 target exited during the attach, 7 bad input file,\n"
		"            8 unsupported, 9 output file cannot be written, 10 partial report,\n"
		"            11 out of memory, 130 interrupted, 141 stdout closed by its reader\n");
}

static int cmd_plugins(void)
{
	struct md_plugin_set set;
	md_plugins_load(&set);
	if (set.n == 0)
		printf("no plugins found (searched $MEMDISSECT_PLUGIN_PATH, <exe dir>/plugins, %s)\n",
#ifdef MD_PLUGIN_DIR
		       MD_PLUGIN_DIR
#else
		       "the plugin directory"
#endif
		);
	for (size_t i = 0; i < set.n; i++) {
		const struct md_loaded_plugin *lp = &set.items[i];
		if (lp->plugin)
			printf("%-10s ok        %s  (%s)\n", lp->plugin->name, lp->path,
			       lp->plugin->description ? lp->plugin->description : "");
		else
			printf("%-10s refused   %s  (%s)\n", "-", lp->path, lp->problem ? lp->problem : "");
	}
	md_plugins_unload(&set);
	return EXIT_OK;
}

static int terminal_width(void)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col;
	const char *cols = getenv("COLUMNS");
	char *end;
	errno = 0;
	long w = cols ? strtol(cols, &end, 10) : 0;
	if (cols && !errno && end != cols && !*end && w >= 40)
		return w > MD_MAX_WIDTH ? MD_MAX_WIDTH : (int)w;
	return 100;
}

/* Decimal digits only: strtoul alone takes " 42", "+42" and "-1". */
static bool parse_uint(const char *s, unsigned long max, unsigned long *v)
{
	char *end;
	if (!s || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	unsigned long x = strtoul(s, &end, 10);
	if (errno || end == s || *end || x > max)
		return false;
	*v = x;
	return true;
}

/* A process id as the kernel writes it: digits, no sign, no space, no leading zero, > 0. */
static bool parse_pid(const char *s, unsigned long *pid)
{
	return s && s[0] != '0' && parse_uint(s, INT_MAX, pid) && *pid > 0;
}

/* --plugin NAME must name a plugin that loads: a typo would otherwise analyse nothing. -1 when
 * fine, else the exit code after listing what there is. */
static int check_plugin_name(const char *name)
{
	if (!name)
		return -1;
	struct md_plugin_set set;
	md_plugins_load(&set);
	bool found = false;
	size_t avail = 0;
	char list[512] = "";
	for (size_t i = 0; i < set.n; i++) {
		const struct md_plugin *p = set.items[i].plugin;
		if (!p)
			continue;
		found |= strcmp(p->name, name) == 0;
		size_t l = strlen(list);
		snprintf(list + l, sizeof(list) - l, "%s%s", avail++ ? ", " : "", p->name);
	}
	md_plugins_unload(&set);
	if (found)
		return -1;
	return fail(md_error_create(MD_ERR_USAGE, "no plugin named '%s' (plugins: %s; see memdissect plugins)", name,
				    avail ? list : "none found"));
}

enum { OPT_JSON = 256, OPT_COLOR, OPT_NO_COLOR, OPT_DEBUGINFO, OPT_OFFLINE, OPT_TOP, OPT_HOLD, OPT_PLUGIN, OPT_MAP,
       OPT_HTML, OPT_FORMAT, OPT_INTERVAL, OPT_COUNT };

static struct md_error *write_html(const struct md_report *r, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return md_error_os(errno, "cannot write %s", path);
	struct md_error *err = md_render_html(r, f);
	if (fclose(f) != 0 && !err)
		err = md_error_os(errno, "writing %s", path);
	if (!err)
		fprintf(stderr, "memdissect: HTML report written to %s\n", path);
	return err;
}

/* Options of core and snapshot (values apart from the enum above, which others extend). */
enum { OPT_EXE = 512, OPT_SYSROOT, OPT_OUTPUT, OPT_COPY, OPT_MAX_PAUSE };
/* Options of cgroup and system. */
enum { OPT_PID = 768, OPT_ATTACH, OPT_WSS, OPT_TEXTFILE };

/* attach PID and core FILE share their options and report; argv[0] says which. */
/* Options every subcommand spells the same way (each accepts those in its getopt table). */
struct common_options {
	int color; /* -1: when stdout is a tty and NO_COLOR is unset */
	bool debuginfo_disabled;
	const char *plugin;
	unsigned hold_pause_ms;
};

/* Handle c if it is a common option, help, or an error: -1 when handled and parsing goes on,
 * else the exit code to return now. */
static int common_option(int c, char **argv, struct common_options *co)
{
	unsigned long v;
	switch (c) {
	case OPT_COLOR:
		co->color = 1;
		return -1;
	case OPT_NO_COLOR:
		co->color = 0;
		return -1;
	case OPT_DEBUGINFO:
		if (strcmp(optarg, "off") == 0)
			co->debuginfo_disabled = true;
		else if (strcmp(optarg, "auto") != 0)
			return fail(md_error_create(MD_ERR_USAGE, "--debuginfo takes auto or off, not '%s'", optarg));
		return -1;
	case OPT_PLUGIN:
		co->plugin = optarg;
		return -1;
	case OPT_OFFLINE:
		/* Debug files only from disk: libdebuginfod asks no server without the variable. */
		unsetenv("DEBUGINFOD_URLS");
		return -1;
	case OPT_HOLD:
		/* a test hook that keeps the target stopped: bounded to a minute */
		if (!parse_uint(optarg, 60000, &v))
			return fail(md_error_create(MD_ERR_USAGE, "--hold-pause takes milliseconds (at most 60000), not '%s'", optarg));
		co->hold_pause_ms = (unsigned)v;
		return -1;
	case 'h':
		usage(stdout);
		return EXIT_OK;
	case ':':
		return fail(md_error_create(MD_ERR_USAGE, "option %s needs a value (see memdissect --help)", argv[optind - 1]));
	default:
		return fail(md_error_create(MD_ERR_USAGE, "unknown option %s (see memdissect --help)", argv[optind - 1]));
	}
}

static bool want_color(int color)
{
	return color < 0 ? isatty(STDOUT_FILENO) && !getenv("NO_COLOR") : color != 0;
}

/* The single process id operand of cmd; -1 after printing the error (then return *code_ret). */
static int pid_operand(const char *cmd, int argc, char **argv, int *code_ret)
{
	unsigned long pid;
	if (optind >= argc)
		*code_ret = fail(md_error_create(MD_ERR_USAGE, "%s needs a process id (see memdissect --help)", cmd));
	else if (optind < argc - 1)
		*code_ret = fail(md_error_create(MD_ERR_USAGE, "%s takes one process id, not '%s'", cmd, argv[optind + 1]));
	else if (!parse_pid(argv[optind], &pid))
		*code_ret = fail(md_error_create(MD_ERR_USAGE, "'%s' is not a process id (digits only)", argv[optind]));
	else
		return (int)pid;
	return -1;
}

static int cmd_attach(int argc, char **argv)
{
	bool core = strcmp(argv[0], "core") == 0;
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "color", no_argument, NULL, OPT_COLOR },
		{ "no-color", no_argument, NULL, OPT_NO_COLOR },
		{ "debuginfo", required_argument, NULL, OPT_DEBUGINFO },
		{ "top", required_argument, NULL, OPT_TOP },
		{ "hold-pause", required_argument, NULL, OPT_HOLD },
		{ "offline", no_argument, NULL, OPT_OFFLINE },
		{ "plugin", required_argument, NULL, OPT_PLUGIN },
		{ "map", no_argument, NULL, OPT_MAP },
		{ "html", required_argument, NULL, OPT_HTML },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "exe", required_argument, NULL, OPT_EXE },
		{ "sysroot", required_argument, NULL, OPT_SYSROOT },
		{ "wss", required_argument, NULL, OPT_WSS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double wss_s = 0;
	bool json = false, openmetrics = false, format_given = false, json_flag = false;
	const char *format = "text";
	const char *html = NULL;
	struct common_options co = { .color = -1 };
	struct md_analyze_options aopts = { 0 };
	struct md_render_options ropts = { .top = 15 };
	optind = 1;
	opterr = 0; /* our own one-line messages */
	int c;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		unsigned long v;
		switch (c) {
		case OPT_JSON:
			if (format_given && !json)
				return fail(md_error_create(MD_ERR_USAGE, "--json and --format %s conflict: give one", format));
			json = true;
			json_flag = true;
			break;
		case OPT_TOP:
			if (!parse_uint(optarg, 100000, &v))
				return fail(md_error_create(MD_ERR_USAGE, "--top takes a number, not '%s'", optarg));
			ropts.top = (int)v;
			break;
		case OPT_MAP:
			ropts.map = true;
			break;
		case OPT_HTML:
			html = optarg;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "json") != 0 && strcmp(optarg, "openmetrics") != 0 && strcmp(optarg, "text") != 0)
				return fail(md_error_create(MD_ERR_USAGE, "--format takes text, json or openmetrics, not '%s'", optarg));
			if ((format_given && strcmp(format, optarg) != 0) || (json_flag && strcmp(optarg, "json") != 0))
				return fail(md_error_create(MD_ERR_USAGE, "%s%s and --format %s conflict: give one",
							    json_flag ? "--json" : "--format ", json_flag ? "" : format, optarg));
			format_given = true;
			format = optarg;
			json = strcmp(optarg, "json") == 0;
			openmetrics = strcmp(optarg, "openmetrics") == 0;
			break;
		case OPT_EXE:
		case OPT_SYSROOT:
			if (!core)
				return fail(md_error_create(MD_ERR_USAGE, "%s is for cores (memdissect core FILE %s)",
							    c == OPT_EXE ? "--exe" : "--sysroot", argv[optind - 1]));
			if (c == OPT_EXE)
				aopts.exe = optarg;
			else
				aopts.sysroot = optarg;
			break;
		case OPT_WSS: {
			char *end;
			errno = 0;
			wss_s = strtod(optarg, &end);
			if (core)
				return fail(md_error_create(MD_ERR_USAGE, "--wss needs a live process (memdissect attach)"));
			if (errno || end == optarg || *end || !(wss_s > 0) || wss_s > 3600)
				return fail(md_error_create(MD_ERR_USAGE, "--wss takes seconds (0 < S <= 3600), not '%s'", optarg));
			break;
		}
		default: {
			int code = common_option(c, argv, &co);
			if (code >= 0)
				return code;
			break;
		}
		}
	}
	if (optind >= argc)
		return fail(md_error_create(MD_ERR_USAGE, core ? "core needs a core file (see memdissect --help)"
							    : "attach needs a process id (see memdissect --help)"));
	if (optind < argc - 1)
		return fail(md_error_create(MD_ERR_USAGE, "%s takes one %s, not '%s'", argv[0],
					    core ? "core file" : "process id", argv[optind + 1]));
	unsigned long pid = 0;
	if (!core && !parse_pid(argv[optind], &pid))
		return fail(md_error_create(MD_ERR_USAGE, "'%s' is not a process id (digits only)", argv[optind]));
	if (ropts.map && (json || openmetrics))
		return fail(md_error_create(MD_ERR_USAGE, "--map is for the text report, not --%s",
					    json ? "json" : "format openmetrics"));
	int code = check_plugin_name(co.plugin);
	if (code >= 0)
		return code;
	if (html) {
		struct md_error *herr = check_output_path("--html", html);
		if (herr)
			return fail_output(herr);
	}

	aopts.debuginfo_disabled = co.debuginfo_disabled;
	aopts.only_plugin = co.plugin;
	aopts.hold_pause_ms = co.hold_pause_ms;
	ropts.color = want_color(co.color);
	ropts.width = terminal_width();

	struct md_analysis a;
	struct md_error *err = core ? md_analyze_core(argv[optind], &aopts, &a)
				    : md_analyze_live((pid_t)pid, &aopts, &a);
	/* The working-set window starts once the target runs again (src/wss.c). */
	if (!err && wss_s > 0)
		err = md_wss_measure((pid_t)pid, wss_s, &a.report);
	if (err) {
		md_analysis_deinit(&a);
		return fail(err);
	}
	/* --html writes the file; stdout then stays quiet unless a format was asked for too */
	if (html) {
		err = write_html(&a.report, html);
		if (err) {
			md_analysis_deinit(&a);
			return fail_output(err);
		}
	}
	if (!err && (!html || format_given || json))
		err = json ? md_render_json(&a.report, stdout)
		      : openmetrics ? md_render_openmetrics(&a.report, stdout)
				    : md_render_text(&a.report, &ropts, stdout);
	if (!err && !json && !openmetrics && (!html || format_given))
		md_wss_render_text(&a.report, ropts.color, stdout);
	bool partial = a.report.partial;
	errno = 0;
	if (!err && (fflush(stdout) != 0 || ferror(stdout)))
		err = md_error_os(errno ? errno : EIO, "writing the report");
	if (!err && json && partial) {
		for (size_t i = 0; i < a.report.n_notes; i++)
			fprintf(stderr, "memdissect: %s\n", md_esc(a.report.notes[i]));
	}
	md_analysis_deinit(&a);
	if (err)
		return fail(err);
	return partial ? EXIT_PARTIAL : EXIT_OK;
}

/* watch --textfile DIR PID...: the node exporter's textfile collector as the output. */
static int watch_textfile(int argc, char **argv, const char *dir, struct md_watch_options *wopts,
			  const struct common_options *co)
{
	if (optind >= argc)
		return fail(md_error_create(MD_ERR_USAGE, "watch --textfile needs one or more process ids"));
	if (wopts->json || wopts->wss_s > 0)
		return fail(md_error_create(MD_ERR_USAGE, "--textfile writes OpenMetrics files: not with --json or --wss"));
	if (!(wopts->interval_s > 0))
		return fail(md_error_create(MD_ERR_USAGE, "watch needs --interval S (seconds between attaches)"));
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0)
		return fail_output(md_error_os(stat(dir, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : EACCES,
					       "--textfile %s", dir));
	size_t n = (size_t)(argc - optind);
	int *pids = calloc(n, sizeof(*pids));
	if (!pids)
		return fail(&md_error_nomem);
	for (size_t i = 0; i < n; i++) {
		unsigned long pid;
		if (!parse_pid(argv[optind + (int)i], &pid)) {
			free(pids);
			return fail(md_error_create(MD_ERR_USAGE, "'%s' is not a process id", argv[optind + (int)i]));
		}
		pids[i] = (int)pid;
	}
	int code = check_plugin_name(co->plugin);
	if (code >= 0) {
		free(pids);
		return code;
	}
	wopts->debuginfo_disabled = co->debuginfo_disabled;
	wopts->only_plugin = co->plugin;
	bool partial = false;
	wopts->partial_ret = &partial;
	struct md_error *err = md_watch_textfile(pids, n, dir, wopts, stdout);
	free(pids);
	return err ? fail_output(err) : partial ? EXIT_PARTIAL : EXIT_OK;
}

static int cmd_watch(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "wss", required_argument, NULL, OPT_WSS },
		{ "textfile", required_argument, NULL, OPT_TEXTFILE },
		{ "html", required_argument, NULL, OPT_HTML },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "color", no_argument, NULL, OPT_COLOR },
		{ "no-color", no_argument, NULL, OPT_NO_COLOR },
		{ "debuginfo", required_argument, NULL, OPT_DEBUGINFO },
		{ "offline", no_argument, NULL, OPT_OFFLINE },
		{ "plugin", required_argument, NULL, OPT_PLUGIN },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct md_watch_options wopts = { .interval_s = 0 };
	struct common_options co = { .color = -1 };
	const char *textfile = NULL;
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		unsigned long v;
		char *end;
		switch (c) {
		case OPT_TEXTFILE:
			textfile = optarg;
			break;
		case OPT_HTML: {
			struct md_error *perr = check_output_path("--html", optarg);
			if (perr)
				return fail_output(perr);
			wopts.html = optarg;
			break;
		}
		case OPT_INTERVAL:
			errno = 0;
			wopts.interval_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(wopts.interval_s > 0) || wopts.interval_s > 86400)
				return fail(md_error_create(MD_ERR_USAGE, "--interval takes seconds (0 < S <= 86400), not '%s'", optarg));
			break;
		case OPT_COUNT:
			if (!parse_uint(optarg, 100000000, &v) || v == 0)
				return fail(md_error_create(MD_ERR_USAGE, "--count takes a positive number, not '%s'", optarg));
			wopts.count = v;
			break;
		case OPT_JSON:
			wopts.json = true;
			break;
		case OPT_WSS:
			errno = 0;
			wopts.wss_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(wopts.wss_s > 0) || wopts.wss_s > 3600)
				return fail(md_error_create(MD_ERR_USAGE, "--wss takes seconds (0 < S <= 3600), not '%s'", optarg));
			break;
		default: {
			int code = common_option(c, argv, &co);
			if (code >= 0)
				return code;
			break;
		}
		}
	}
	int code;
	if (textfile)
		return watch_textfile(argc, argv, textfile, &wopts, &co);
	int pid = pid_operand("watch", argc, argv, &code);
	if (pid < 0)
		return code;
	if (!(wopts.interval_s > 0))
		return fail(md_error_create(MD_ERR_USAGE, "watch needs --interval S (seconds between attaches)"));
	if (wopts.wss_s >= wopts.interval_s)
		return fail(md_error_create(MD_ERR_USAGE, "--wss %g must be shorter than --interval %g (the window runs "
					    "inside each interval)", wopts.wss_s, wopts.interval_s));
	code = check_plugin_name(co.plugin);
	if (code >= 0)
		return code;
	wopts.debuginfo_disabled = co.debuginfo_disabled;
	wopts.only_plugin = co.plugin;
	wopts.color = want_color(co.color);
	wopts.width = terminal_width();
	bool partial = false;
	wopts.partial_ret = &partial;
	struct md_error *err = md_watch_run(pid, &wopts, stdout);
	return err ? fail(err) : partial ? EXIT_PARTIAL : EXIT_OK;
}

static int cmd_diff(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "color", no_argument, NULL, OPT_COLOR },
		{ "no-color", no_argument, NULL, OPT_NO_COLOR },
		{ "top", required_argument, NULL, OPT_TOP },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct md_diff_options dopts = { .top = 10 };
	struct common_options co = { .color = -1 };
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		unsigned long v;
		switch (c) {
		case OPT_JSON:
			dopts.json = true;
			break;
		case OPT_TOP:
			if (!parse_uint(optarg, 100000, &v))
				return fail(md_error_create(MD_ERR_USAGE, "--top takes a number, not '%s'", optarg));
			dopts.top = (int)v;
			break;
		default: {
			int code = common_option(c, argv, &co);
			if (code >= 0)
				return code;
			break;
		}
		}
	}
	if (argc - optind != 2)
		return fail(md_error_create(MD_ERR_USAGE, "diff takes two JSON reports (memdissect attach --json), A and B"));
	dopts.color = want_color(co.color);
	dopts.width = terminal_width();
	struct md_error *err = md_diff_files(argv[optind], argv[optind + 1], &dopts, stdout);
	return err ? fail(err) : EXIT_OK;
}

static int cmd_snapshot(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ "debuginfo", required_argument, NULL, OPT_DEBUGINFO },
		{ "plugin", required_argument, NULL, OPT_PLUGIN },
		{ "hold-pause", required_argument, NULL, OPT_HOLD },
		{ "offline", no_argument, NULL, OPT_OFFLINE },
		{ "copy", required_argument, NULL, OPT_COPY },
		{ "max-pause", required_argument, NULL, OPT_MAX_PAUSE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct md_analyze_options aopts = { 0 };
	struct common_options co = { .color = -1 };
	const char *out = NULL;
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
		case OPT_OUTPUT:
			out = optarg;
			break;
		case OPT_COPY:
			if (strcmp(optarg, "memory") == 0)
				aopts.snapshot_copy = MD_SNAPSHOT_COPY_MEMORY;
			else if (strcmp(optarg, "stream") == 0)
				aopts.snapshot_copy = MD_SNAPSHOT_COPY_STREAM;
			else if (strcmp(optarg, "auto") != 0)
				return fail(md_error_create(MD_ERR_USAGE, "--copy takes auto, memory or stream, not '%s'", optarg));
			break;
		case OPT_MAX_PAUSE: {
			char *end;
			errno = 0;
			aopts.max_pause_s = strcmp(optarg, "none") == 0 ? -1 : strtod(optarg, &end);
			if (strcmp(optarg, "none") != 0 && (errno || end == optarg || *end || !(aopts.max_pause_s > 0) ||
							    aopts.max_pause_s > 86400))
				return fail(md_error_create(MD_ERR_USAGE, "--max-pause takes seconds (0 < S <= 86400) or none, not '%s'", optarg));
			break;
		}
		default: {
			int code = common_option(c, argv, &co);
			if (code >= 0)
				return code;
			break;
		}
		}
	}
	int code;
	int pid = pid_operand("snapshot", argc, argv, &code);
	if (pid < 0)
		return code;
	aopts.debuginfo_disabled = co.debuginfo_disabled;
	aopts.only_plugin = co.plugin;
	aopts.hold_pause_ms = co.hold_pause_ms;
	if (!out)
		return fail(md_error_create(MD_ERR_USAGE, "snapshot needs -o FILE"));
	code = check_plugin_name(co.plugin);
	if (code >= 0)
		return code;
	struct md_error *err = check_output_path("snapshot -o", out);
	if (err)
		return fail_output(err);
	struct md_snapshot_result res;
	err = md_analyze_snapshot((pid_t)pid, out, &aopts, &res);
	if (err && err->code == MD_ERR_OS && (err->errnum == ENOSPC || err->errnum == EDQUOT || err->errnum == EFBIG))
		return fail_output(err);
	if (err)
		return fail(err);
	char b1[16], b2[16];
	printf("snapshot of process %d written to %s: %s of resident memory (%zu mapping%s, %zu thread%s), file %s\n"
	       "pause %.1f ms (capture %.1f ms, %s %.1f ms), written in %.1f ms%s%s\n",
	       pid, md_esc(out), md_format_bytes(res.resident_bytes, b1, sizeof(b1)), res.mappings,
	       res.mappings == 1 ? "" : "s", res.threads, res.threads == 1 ? "" : "s",
	       md_format_bytes(res.file_bytes, b2, sizeof(b2)), res.pause_ms, res.capture_ms,
	       res.streamed ? "streaming to the file" : "copy", res.copy_ms, res.write_ms,
	       res.consistent ? "" : "; inside the allocator: ", res.consistent ? "" : md_esc(res.why));
	printf("pause estimated before stopping: %.1f ms\n", res.estimated_pause_ms);
	for (size_t i = 0; i < res.n_notes; i++)
		printf("note: %s\n", md_esc(res.notes[i]));
	if (res.notes_left_out)
		printf("note: %zu more like these\n", res.notes_left_out);
	if (res.unreadable_pages)
		printf("%llu resident page%s could not be read and %s not in the file\n",
		       (unsigned long long)res.unreadable_pages, res.unreadable_pages == 1 ? "" : "s",
		       res.unreadable_pages == 1 ? "is" : "are");
	errno = 0;
	if (fflush(stdout) != 0 || ferror(stdout))
		return fail(md_error_os(errno ? errno : EIO, "writing the summary"));
	return EXIT_OK;
}

/* Write a cgroup or system document as JSON, text or an HTML file. */
static int above_output(struct md_node *doc, bool json, const char *html, bool system, bool color)
{
	struct md_error *err = NULL;
	if (html) {
		FILE *f = fopen(html, "w");
		if (!f)
			err = md_error_os(errno, "cannot write %s", html);
		else {
			err = md_above_render_html(doc, system, f);
			if (fclose(f) != 0 && !err)
				err = md_error_os(errno, "writing %s", html);
		}
	} else if (json) {
		err = md_node_write_json(doc, stdout, 2);
		if (!err && (fputc('\n', stdout) == EOF || fflush(stdout) != 0))
			err = md_error_os(errno, "writing the report");
	} else {
		err = system ? md_system_render_text(doc, color, stdout) : md_cgroup_render_text(doc, color, stdout);
	}
	md_node_destroy(doc);
	return err ? fail(err) : EXIT_OK;
}

/* memdissect cgroup PATH | --pid PID and memdissect system. */
static int cmd_above(int argc, char **argv)
{
	bool system = strcmp(argv[0], "system") == 0;
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "html", required_argument, NULL, OPT_HTML },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "attach", no_argument, NULL, OPT_ATTACH },
		{ "top", required_argument, NULL, OPT_TOP },
		{ "color", no_argument, NULL, OPT_COLOR },
		{ "no-color", no_argument, NULL, OPT_NO_COLOR },
		{ "debuginfo", required_argument, NULL, OPT_DEBUGINFO },
		{ "plugin", required_argument, NULL, OPT_PLUGIN },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	const char *html = NULL;
	unsigned long pid = 0, top = 10;
	struct md_cgroup_report_options copts = { 0 };
	struct common_options co = { .color = -1 };
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if ((c == OPT_PID || c == OPT_ATTACH) && system)
			return fail(md_error_create(MD_ERR_USAGE, "%s is for memdissect cgroup", argv[optind - 1]));
		switch (c) {
		case OPT_JSON:
			json = true;
			break;
		case OPT_HTML:
			html = optarg;
			break;
		case OPT_PID:
			if (!parse_uint(optarg, INT_MAX, &pid) || pid == 0)
				return fail(md_error_create(MD_ERR_USAGE, "'%s' is not a process id", optarg));
			break;
		case OPT_ATTACH:
			copts.attach = true;
			break;
		case OPT_TOP:
			if (!parse_uint(optarg, 100000, &top))
				return fail(md_error_create(MD_ERR_USAGE, "--top takes a number, not '%s'", optarg));
			break;
		default: {
			int code = common_option(c, argv, &co);
			if (code >= 0)
				return code;
			break;
		}
		}
	}
	struct md_node *doc = NULL;
	struct md_error *err;
	if (system) {
		if (optind < argc)
			return fail(md_error_create(MD_ERR_USAGE, "system takes no operand, not '%s'", argv[optind]));
		struct md_system_report_options sopts = { "/sys/fs/cgroup", top };
		err = md_system_report_build(&sopts, &doc);
	} else {
		if ((optind < argc) == (pid != 0))
			return fail(md_error_create(MD_ERR_USAGE, "cgroup takes a cgroup PATH or --pid PID (one of them)"));
		if (optind < argc - 1)
			return fail(md_error_create(MD_ERR_USAGE, "cgroup takes one PATH, not '%s'", argv[optind + 1]));
		char *dir = NULL, *path = NULL;
		err = pid ? md_cgroup_dir_of_pid((pid_t)pid, "/sys/fs/cgroup", &dir, &path)
			  : md_cgroup_resolve(argv[optind], "/sys/fs/cgroup", &dir, &path);
		copts.aopts.debuginfo_disabled = co.debuginfo_disabled;
		copts.aopts.only_plugin = co.plugin;
		if (!err)
			err = md_cgroup_report_build(dir, path, &copts, &doc);
		free(dir);
		free(path);
	}
	if (err && err->code == MD_ERR_NOT_FOUND) /* a PATH that is no memory cgroup: bad input */
		err->code = MD_ERR_BAD_FILE;
	if (err)
		return fail(err);
	return above_output(doc, json, html, system, want_color(co.color));
}

int main(int argc, char **argv)
{
	md_live_install_signal_handlers();
	/* A debuginfod server that does not answer must not hold the attach for libdebuginfod's
	 * default 90 s per file; the user's own setting wins. */
	if (getenv("DEBUGINFOD_URLS") && !getenv("DEBUGINFOD_TIMEOUT"))
		setenv("DEBUGINFOD_TIMEOUT", "10", 1);
	if (argc < 2) {
		fprintf(stderr, "memdissect: no command given\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("memdissect %s\n", MEMDISSECT_VERSION);
		return EXIT_OK;
	}
	if (strcmp(cmd, "attach") == 0)
		return cmd_attach(argc - 1, argv + 1);
	if (strcmp(cmd, "plugins") == 0)
		return cmd_plugins();
	if (strcmp(cmd, "core") == 0)
		return cmd_attach(argc - 1, argv + 1);
	if (strcmp(cmd, "snapshot") == 0)
		return cmd_snapshot(argc - 1, argv + 1);
	if (strcmp(cmd, "watch") == 0)
		return cmd_watch(argc - 1, argv + 1);
	if (strcmp(cmd, "diff") == 0)
		return cmd_diff(argc - 1, argv + 1);
	if (strcmp(cmd, "cgroup") == 0 || strcmp(cmd, "system") == 0)
		return cmd_above(argc - 1, argv + 1);
	fprintf(stderr, "memdissect: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
