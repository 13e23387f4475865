/* Prometheus: `memdissect watch --textfile DIR PID PID` for Debian's real node exporter, started by
 * the test on 127.0.0.1 with the textfile collector pointed at DIR. Its /metrics must carry every
 * memdissect series of the file with the file's values (the report's: per pid, the classes sum to
 * memdissect_rss_bytes), each family with its HELP and TYPE; the file is replaced atomically
 * (no temporary file left behind). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procfs.h"
#include "tests.h"

/* "name{b="2",a="1"} 5" -> "name{a="1",b="2"} 5" (the exporter sorts labels); 0 when not a sample. */
static int normalise(const char *line, char *out, size_t len)
{
	if (strncmp(line, "memdissect_", 11) != 0)
		return 0;
	const char *brace = strchr(line, '{'), *close = brace ? strchr(brace, '}') : NULL;
	if (!brace || !close)
		return 0;
	char labels[16][256];
	int n = 0;
	const char *p = brace + 1;
	while (p < close && n < 16) {
		const char *q = p;
		bool in = false;
		while (q < close && (in || *q != ',')) {
			if (*q == '"' && q[-1] != '\\')
				in = !in;
			q++;
		}
		snprintf(labels[n++], sizeof(labels[0]), "%.*s", (int)(q - p), p);
		p = q + 1;
	}
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && strcmp(labels[j - 1], labels[j]) > 0; j--) {
			char t[256];
			memcpy(t, labels[j], sizeof(t));
			memcpy(labels[j], labels[j - 1], sizeof(t));
			memcpy(labels[j - 1], t, sizeof(t));
		}
	double v = strtod(close + 1, NULL);
	size_t k = (size_t)snprintf(out, len, "%.*s{", (int)(brace - line), line);
	for (int i = 0; i < n && k < len; i++)
		k += (size_t)snprintf(out + k, len - k, "%s%s", i ? "," : "", labels[i]);
	snprintf(out + k, len > k ? len - k : 0, "} %.6g", v);
	return 1;
}

START_TEST(test_node_exporter_textfile)
{
	SKIP_WITHOUT_PTRACE();
	if (system("{ command -v prometheus-node-exporter && command -v curl; } >/dev/null") != 0)
		MD_SKIP("prometheus-node-exporter or curl missing (scripts/deps.sh installs them)");
	char dir[] = "/tmp/md-textfile-XXXXXX";
	ck_assert(mkdtemp(dir));
	struct md_test_proc a, b;
	const char *sizes[] = { "sizes", NULL }, *kth[] = { "kth", NULL };
	ck_assert(md_test_proc_start(&a, "glibc_truth", sizes));
	ck_assert(md_test_proc_start(&b, "glibc_truth", kth));

	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	int port = 20000 + rand() % 30000;
	char listen[64], textdir[200];
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", port);
	snprintf(textdir, sizeof(textdir), "--collector.textfile.directory=%s", dir);
	pid_t exporter = fork();
	ck_assert(exporter >= 0);
	if (exporter == 0) {
		char log[300];
		snprintf(log, sizeof(log), "%s.exporter.log", dir);
		if (!freopen("/dev/null", "w", stdout) || !freopen(log, "w", stderr))
			_exit(126);
		execlp("prometheus-node-exporter", "prometheus-node-exporter", listen, "--collector.disable-defaults",
		       "--collector.textfile", textdir, (char *)NULL);
		_exit(127);
	}

	char pa[24], pb[24];
	snprintf(pa, sizeof(pa), "%d", (int)a.pid);
	snprintf(pb, sizeof(pb), "%d", (int)b.pid);
	const char *args[] = { "watch", "--textfile", dir, "--interval", "0.3", "--count", "2", pa, pb, NULL };
	char *out = NULL, *err = NULL;
	int st = md_test_run(args, &out, &err, 120000);
	ck_assert_msg(st == 0, "watch --textfile: exit %d\n%s", st, err);
	ck_assert_msg(md_test_has_line_with(out, "memdissect.prom: 2 processes"), "watch --textfile said:\n%s", out);
	free(out);
	free(err);

	char path[256];
	snprintf(path, sizeof(path), "%s/memdissect.prom", dir);
	char *file = NULL;
	size_t file_len = 0;
	ck_assert(md_read_file(path, &file, &file_len) == NULL);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
	char *listing = md_test_capture(cmd);
	ck_assert_msg(listing && strcmp(listing, "memdissect.prom\n") == 0, "the directory holds:\n%s", listing);
	free(listing);

	char *metrics = NULL;
	snprintf(cmd, sizeof(cmd), "curl -sf http://127.0.0.1:%d/metrics", port);
	for (int i = 0; i < 100 && !(metrics && strstr(metrics, "memdissect_rss_bytes")); i++) {
		free(metrics);
		usleep(100000);
		metrics = md_test_capture(cmd);
	}
	ck_assert_msg(metrics && strstr(metrics, "memdissect_rss_bytes"), "the node exporter serves no memdissect series");
	ck_assert_msg(strstr(metrics, "# TYPE memdissect_class_bytes gauge") && strstr(metrics, "# HELP memdissect_class_bytes"),
		      "no HELP/TYPE for memdissect_class_bytes in /metrics");
	char log[300];
	snprintf(log, sizeof(log), "%s.exporter.log", dir);
	char *exporter_log = NULL;
	size_t log_len = 0;
	md_error_destroy(md_read_file(log, &exporter_log, &log_len));
	const char *scrape = strstr(metrics, "\nnode_textfile_scrape_error ");
	ck_assert_msg(scrape && strncmp(scrape, "\nnode_textfile_scrape_error 0\n", 30) == 0,
		      "the textfile collector could not read the file (%.40s):\n%s", scrape ? scrape + 1 : "no scrape_error line",
		      exporter_log ? exporter_log : "");
	free(exporter_log);
	unlink(log);

	/* Every sample of the file, with its value, in /metrics. */
	char *normal_metrics = calloc(1, strlen(metrics) * 2 + 1);
	size_t nm = 0;
	for (char *line = strtok(metrics, "\n"); line; line = strtok(NULL, "\n")) {
		char norm[4096];
		if (normalise(line, norm, sizeof(norm)))
			nm += (size_t)sprintf(normal_metrics + nm, "%s\n", norm);
	}
	unsigned samples = 0;
	uint64_t rss[2] = { 0, 0 }, classes[2] = { 0, 0 };
	for (char *line = strtok(file, "\n"); line; line = strtok(NULL, "\n")) {
		char norm[4096], want[4100];
		if (!normalise(line, norm, sizeof(norm)))
			continue;
		samples++;
		snprintf(want, sizeof(want), "%s\n", norm);
		ck_assert_msg(strstr(normal_metrics, want), "/metrics lacks %s", norm);
		for (int k = 0; k < 2; k++) {
			char lab[48];
			snprintf(lab, sizeof(lab), "pid=\"%s\"", k ? pb : pa);
			if (!strstr(line, lab))
				continue;
			uint64_t v = strtoull(strrchr(line, ' ') + 1, NULL, 10);
			if (strncmp(line, "memdissect_rss_bytes{", 21) == 0)
				rss[k] = v;
			if (strncmp(line, "memdissect_class_bytes{", 23) == 0)
				classes[k] += v;
		}
	}
	fprintf(stderr, "metrics: %u memdissect samples in the file, all in /metrics; rss %llu / %llu\n", samples,
		(unsigned long long)rss[0], (unsigned long long)rss[1]);
	ck_assert_msg(samples > 40, "only %u samples", samples);
	for (int k = 0; k < 2; k++)
		ck_assert_msg(rss[k] > 0 && classes[k] == rss[k], "pid %s: classes sum to %llu, rss %llu", k ? pb : pa,
			      (unsigned long long)classes[k], (unsigned long long)rss[k]);
	free(normal_metrics);
	free(metrics);
	free(file);
	kill(exporter, SIGTERM);
	waitpid(exporter, NULL, 0);
	md_test_proc_stop(&a);
	md_test_proc_stop(&b);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}
END_TEST

Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("textfile");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_node_exporter_textfile);
	suite_add_tcase(s, tc);
	return s;
}
