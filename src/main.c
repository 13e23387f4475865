/* memdissect: the command line. The only place that prints errors or exits. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "analyze.h"
#include "live.h"
#include "memdissect/report.h"
#include "plugins.h"
#include "render.h"

#define MEMDISSECT_VERSION "0.1.0"

/* Documented in README.md and docs/exit-codes.md. */
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
	EXIT_PARTIAL = 10,
	EXIT_INTERRUPTED = 130,
};

static int exit_code_of(const struct md_error *err)
{
	switch (err->code) {
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
	fprintf(stderr, "memdissect: %s\n", err->message ? err->message : "error");
	md_error_destroy(err);
	return code;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: memdissect attach [options] PID\n"
		"       memdissect watch [options] PID --interval S [--count N]\n"
		"       memdissect diff [options] A.json B.json\n"
		"       memdissect core [options] COREFILE [--exe PATH] [--sysroot DIR]\n"
		"       memdissect snapshot [--debuginfo=MODE] [--max-pause S|none] PID -o FILE\n"
		"       memdissect plugins\n"
		"       memdissect --help | --version\n"
		"\n"
		"attach: stop every thread of PID briefly, account for every resident page\n"
		"        (live heap, free, allocator metadata, stack, file, shared, other anonymous)\n"
		"        and explain the gap between the heap and RSS.\n"
		"\n"
		"options:\n"
		"  --json              JSON report (docs/json.md)\n"
		"  --color, --no-color colour in the text report (default: when stdout is a tty)\n"
		"  --debuginfo=MODE    auto (default): use debug info when found; off: never\n"
		"  --top N             mappings listed in the text report (default 15)\n"
		"  --plugin NAME       use only this allocator plugin\n"
		"  --map               the full drainability map (default: a summary)\n"
		"  --html FILE         write a self-contained HTML report to FILE\n"
		"  --format FMT        text (default), json, or openmetrics (node-exporter textfile)\n"
		"\n"
		"watch: attach every S seconds (N times, or until Ctrl-C); a table of live heap, free,\n"
		"       RSS and gap, and a verdict from the fitted slopes (--json: a JSON line per sample)\n"
		"diff:  what changed between two `attach --json` reports, per class, allocator and region\n"
		"core:  the same report from an ELF core (kernel core, gdb gcore or memdissect snapshot);\n"
		"       --exe and --sysroot say where the executable and libraries are (docs/cores.md)\n"
		"snapshot: stop PID briefly and write a sparse ELF core FILE (gdb and eu-stack open it)\n"
		"       that `memdissect core FILE` turns into the report of that moment; refused when the\n"
		"       pause is estimated longer than --max-pause (default 2 s; 'none': no limit)\n"
		"\n"
		"exit codes: 0 ok, 1 internal error, 2 usage, 3 no such process, 4 permission denied,\n"
		"            5 zombie, 6 target exited during the attach, 7 bad input file,\n"
		"            8 unsupported, 10 partial report, 130 interrupted\n");
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
	if (cols && atoi(cols) >= 40)
		return atoi(cols);
	return 100;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *v)
{
	char *end;
	errno = 0;
	unsigned long x = strtoul(s, &end, 10);
	if (errno || end == s || *end || x > max || s[0] == '-')
		return false;
	*v = x;
	return true;
}

enum { OPT_JSON = 256, OPT_COLOR, OPT_NO_COLOR, OPT_DEBUGINFO, OPT_TOP, OPT_HOLD, OPT_PLUGIN, OPT_MAP,
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
	case OPT_HOLD:
		if (!parse_uint(optarg, 3600000, &v))
			return fail(md_error_create(MD_ERR_USAGE, "--hold-pause takes milliseconds, not '%s'", optarg));
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
	else if (!parse_uint(argv[optind], INT_MAX, &pid) || pid == 0)
		*code_ret = fail(md_error_create(MD_ERR_USAGE, "'%s' is not a process id", argv[optind]));
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
		{ "plugin", required_argument, NULL, OPT_PLUGIN },
		{ "map", no_argument, NULL, OPT_MAP },
		{ "html", required_argument, NULL, OPT_HTML },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "exe", required_argument, NULL, OPT_EXE },
		{ "sysroot", required_argument, NULL, OPT_SYSROOT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, openmetrics = false, format_given = false;
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
			json = true;
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
			format_given = true;
			json = strcmp(optarg, "json") == 0;
			openmetrics = strcmp(optarg, "openmetrics") == 0;
			if (!json && !openmetrics && strcmp(optarg, "text") != 0)
				return fail(md_error_create(MD_ERR_USAGE, "--format takes text, json or openmetrics, not '%s'", optarg));
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
	if (!core && (!parse_uint(argv[optind], INT_MAX, &pid) || pid == 0))
		return fail(md_error_create(MD_ERR_USAGE, "'%s' is not a process id", argv[optind]));

	aopts.debuginfo_disabled = co.debuginfo_disabled;
	aopts.only_plugin = co.plugin;
	aopts.hold_pause_ms = co.hold_pause_ms;
	ropts.color = want_color(co.color);
	ropts.width = terminal_width();

	struct md_analysis a;
	struct md_error *err = core ? md_analyze_core(argv[optind], &aopts, &a)
				    : md_analyze_live((pid_t)pid, &aopts, &a);
	if (err) {
		md_analysis_deinit(&a);
		return fail(err);
	}
	/* --html writes the file; stdout then stays quiet unless a format was asked for too */
	if (html)
		err = write_html(&a.report, html);
	if (!err && (!html || format_given || json))
		err = json ? md_render_json(&a.report, stdout)
		      : openmetrics ? md_render_openmetrics(&a.report, stdout)
				    : md_render_text(&a.report, &ropts, stdout);
	bool partial = a.report.partial;
	if (!err && fflush(stdout) != 0)
		err = md_error_os(errno, "writing the report");
	if (!err && json && partial) {
		for (size_t i = 0; i < a.report.n_notes; i++)
			fprintf(stderr, "memdissect: %s\n", a.report.notes[i]);
	}
	md_analysis_deinit(&a);
	if (err)
		return fail(err);
	return partial ? EXIT_PARTIAL : EXIT_OK;
}

static int cmd_watch(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "color", no_argument, NULL, OPT_COLOR },
		{ "no-color", no_argument, NULL, OPT_NO_COLOR },
		{ "debuginfo", required_argument, NULL, OPT_DEBUGINFO },
		{ "plugin", required_argument, NULL, OPT_PLUGIN },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct md_watch_options wopts = { .interval_s = 0 };
	struct common_options co = { .color = -1 };
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		unsigned long v;
		char *end;
		switch (c) {
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
		default: {
			int code = common_option(c, argv, &co);
			if (code >= 0)
				return code;
			break;
		}
		}
	}
	int code;
	int pid = pid_operand("watch", argc, argv, &code);
	if (pid < 0)
		return code;
	if (!(wopts.interval_s > 0))
		return fail(md_error_create(MD_ERR_USAGE, "watch needs --interval S (seconds between attaches)"));
	wopts.debuginfo_disabled = co.debuginfo_disabled;
	wopts.only_plugin = co.plugin;
	wopts.color = want_color(co.color);
	wopts.width = terminal_width();
	struct md_error *err = md_watch_run(pid, &wopts, stdout);
	return err ? fail(err) : EXIT_OK;
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
	struct md_snapshot_result res;
	struct md_error *err = md_analyze_snapshot((pid_t)pid, out, &aopts, &res);
	if (err)
		return fail(err);
	char b1[16], b2[16];
	printf("snapshot of process %d written to %s: %s of resident memory (%zu mappings, %zu threads), file %s\n"
	       "pause %.1f ms (capture %.1f ms, %s %.1f ms), written in %.1f ms%s%s\n",
	       pid, out, md_format_bytes(res.resident_bytes, b1, sizeof(b1)), res.mappings, res.threads,
	       md_format_bytes(res.file_bytes, b2, sizeof(b2)), res.pause_ms, res.capture_ms,
	       res.streamed ? "streaming to the file" : "copy", res.copy_ms, res.write_ms,
	       res.consistent ? "" : "; inside the allocator: ", res.consistent ? "" : res.why);
	printf("pause estimated before stopping: %.1f ms\n", res.estimated_pause_ms);
	for (size_t i = 0; i < res.n_notes; i++)
		printf("note: %s\n", res.notes[i]);
	if (res.notes_left_out)
		printf("note: %zu more like these\n", res.notes_left_out);
	if (res.unreadable_pages)
		printf("%llu resident pages could not be read and are not in the file\n",
		       (unsigned long long)res.unreadable_pages);
	if (fflush(stdout) != 0)
		return fail(md_error_os(errno, "writing the summary"));
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	md_live_install_signal_handlers();
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
	fprintf(stderr, "memdissect: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
