/* The report as OpenMetrics text, for Prometheus through the node-exporter textfile collector
 * (`memdissect attach --format openmetrics PID > /var/lib/node_exporter/textfile/app.prom.$$ &&
 * mv ... app.prom`). Every family is a gauge; names end in their unit; no timestamps (the
 * textfile collector refuses them); the text ends with "# EOF". The classic Prometheus text
 * parser of the collector reads "# UNIT" and "# EOF" as comments, so one output serves both.
 * Labels stay stable from one run to the next (no addresses): regions are summed per allocator
 * group, so a series keeps its identity while the process lives. The per-group families keep
 * the names they were published under (memdissect_arena_*, label "arena" = the plugin's group
 * number): dashboards and alerts use them. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

struct om {
	FILE *out;
	char base[256]; /* pid="..",comm=".." */
};

/* Label value escaping of the exposition formats (backslash, double quote, newline) over the
 * escaping of target-controlled text of every human format: a comm holding ESC ] 0 ; x BEL becomes
 * the label value text "\x1b]0;x\x07", never the raw bytes. */
static void escape(char *buf, size_t len, const char *raw)
{
	char shown[1024];
	md_escape_text_keep_backslash(raw, shown, sizeof(shown));
	size_t k = 0;
	for (const char *s = shown; *s && k + 3 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\\' || c == '"')
			buf[k++] = '\\';
		buf[k++] = (char)c;
	}
	buf[k] = 0;
}

static void family(const struct om *o, const char *name, const char *unit, const char *help)
{
	fprintf(o->out, "# TYPE %s gauge\n", name);
	if (unit)
		fprintf(o->out, "# UNIT %s %s\n", name, unit);
	fprintf(o->out, "# HELP %s %s\n", name, help);
}

/* A sample: name{base,extra} value. extra is "" or `key="value"` (already escaped). */
static void sample_u(const struct om *o, const char *name, const char *extra, uint64_t v)
{
	fprintf(o->out, "%s{%s%s%s} %" PRIu64 "\n", name, o->base, extra[0] ? "," : "", extra, v);
}

static void sample_i(const struct om *o, const char *name, const char *extra, int64_t v)
{
	fprintf(o->out, "%s{%s%s%s} %" PRId64 "\n", name, o->base, extra[0] ? "," : "", extra, v);
}

static void sample_d(const struct om *o, const char *name, const char *extra, double v)
{
	fprintf(o->out, "%s{%s%s%s} %.6f\n", name, o->base, extra[0] ? "," : "", extra, v);
}

static void one(const struct om *o, const char *name, const char *unit, const char *help, uint64_t v)
{
	family(o, name, unit, help);
	sample_u(o, name, "", v);
}

struct group_sum {
	const char *allocator;
	int group;
	uint64_t resident, releasable, kept, pinned, metadata;
};

struct md_error *md_render_openmetrics(const struct md_report *r, FILE *out)
{
	struct om o = { .out = out };
	char comm[160], exe[1024], extra[1200], v1[160];
	char comm_raw[sizeof(r->target.comm) + 1];
	snprintf(comm_raw, sizeof(comm_raw), "%.*s", (int)sizeof(r->target.comm), r->target.comm);
	escape(comm, sizeof(comm), comm_raw);
	snprintf(o.base, sizeof(o.base), "pid=\"%" PRId32 "\",comm=\"%s\"", r->target.pid, comm);

	struct md_gap g;
	struct md_error *err = md_gap_compute(r, &g);
	if (err)
		return err;

	family(&o, "memdissect_info", NULL, "What was inspected (value 1).");
	escape(exe, sizeof(exe), r->target.exe ? r->target.exe : "");
	snprintf(extra, sizeof(extra), "exe=\"%s\",source=\"%s\"", exe, r->target.source ? r->target.source : "live");
	sample_u(&o, "memdissect_info", extra, 1);
	one(&o, "memdissect_partial", NULL, "1 when an allocator was present but could not be analysed.",
	    r->partial ? 1 : 0);
	family(&o, "memdissect_pause_seconds", "seconds", "How long the target was stopped.");
	sample_d(&o, "memdissect_pause_seconds", "", r->target.pause_ms / 1000.0);
	one(&o, "memdissect_threads", NULL, "Threads of the process.", r->target.threads);

	one(&o, "memdissect_rss_bytes", "bytes", "Resident set size (smaps_rollup Rss).", r->memory.rss_bytes);
	one(&o, "memdissect_pss_bytes", "bytes", "Proportional set size.", r->memory.pss_bytes);
	one(&o, "memdissect_uss_bytes", "bytes", "Unique set size (private pages).", r->memory.uss_bytes);
	one(&o, "memdissect_swap_bytes", "bytes", "Swapped-out bytes of the process.", r->memory.swap_bytes);

	family(&o, "memdissect_class_bytes", "bytes", "Resident bytes by class; the classes sum to the RSS.");
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		snprintf(extra, sizeof(extra), "class=\"%s\"", md_class_name((enum md_class)c));
		sample_u(&o, "memdissect_class_bytes", extra, r->classes[c]);
	}

	one(&o, "memdissect_live_heap_bytes", "bytes", "What the program holds: the allocators' live bytes.",
	    g.live_heap_bytes);
	one(&o, "memdissect_gap_bytes", "bytes", "RSS minus the live heap.", g.gap_bytes);
	family(&o, "memdissect_gap_part_bytes", "bytes",
	       "The gap term by term (releasable, pinned, kept_free, metadata, slack, outside); the parts sum to the gap.");
	sample_u(&o, "memdissect_gap_part_bytes", "part=\"releasable\"", g.releasable_bytes);
	sample_u(&o, "memdissect_gap_part_bytes", "part=\"pinned\"", g.pinned_free_bytes);
	sample_u(&o, "memdissect_gap_part_bytes", "part=\"kept_free\"", g.kept_free_bytes);
	sample_u(&o, "memdissect_gap_part_bytes", "part=\"metadata\"", g.metadata_bytes);
	sample_i(&o, "memdissect_gap_part_bytes", "part=\"slack\"", g.live_slack_bytes);
	sample_u(&o, "memdissect_gap_part_bytes", "part=\"outside\"", g.outside_bytes);
	/* slack = headers - untouched live: the two apart, never negative */
	one(&o, "memdissect_headers_bytes", "bytes", "Chunk headers, padding and rounding on live pages.",
	    g.headers_bytes);
	one(&o, "memdissect_untouched_live_bytes", "bytes",
	    "Live bytes on pages never touched: in the live heap, not in RSS.", g.untouched_live_bytes);
	if (r->n_unanalysed) {
		family(&o, "memdissect_unanalysed_allocator", NULL,
		       "An allocator or runtime present that no plugin walks (value 1); its memory is in anon_other.");
		for (size_t i = 0; i < r->n_unanalysed; i++) {
			char name[96], module[1024];
			escape(name, sizeof(name), r->unanalysed[i].name);
			escape(module, sizeof(module), r->unanalysed[i].module);
			snprintf(extra, sizeof(extra), "name=\"%s\",module=\"%s\"", name, module);
			sample_u(&o, "memdissect_unanalysed_allocator", extra, 1);
		}
	}

	/* Per allocator group: rows summed by (allocator, group). */
	struct group_sum *sums = calloc(g.n_rows ? g.n_rows : 1, sizeof(*sums));
	size_t n_sums = 0;
	if (!sums) {
		md_gap_deinit(&g);
		return &md_error_nomem;
	}
	for (size_t i = 0; i < g.n_rows; i++) {
		const struct md_gap_row *row = &g.rows[i];
		struct group_sum *s = NULL;
		for (size_t k = 0; k < n_sums && !s; k++)
			if (sums[k].group == row->group && strcmp(sums[k].allocator, row->allocator) == 0)
				s = &sums[k];
		if (!s) {
			s = &sums[n_sums++];
			s->allocator = row->allocator;
			s->group = row->group;
		}
		s->resident += row->resident_bytes;
		s->releasable += row->releasable_bytes;
		s->kept += row->kept_free_bytes;
		s->pinned += row->pinned_free_bytes;
		s->metadata += row->metadata_bytes;
	}
	static const struct {
		const char *name, *help;
		size_t offset;
	} group_families[] = {
		{ "memdissect_arena_resident_bytes", "Resident bytes of an allocator group's regions (group -1: none).",
		  offsetof(struct group_sum, resident) },
		{ "memdissect_arena_releasable_bytes", "What the allocator's release call would give back now, per group.",
		  offsetof(struct group_sum, releasable) },
		{ "memdissect_arena_pinned_free_bytes", "Free bytes on pages that also hold live data, per group.",
		  offsetof(struct group_sum, pinned) },
		{ "memdissect_arena_kept_free_bytes", "Free pages out of the release call's reach, per group.",
		  offsetof(struct group_sum, kept) },
		{ "memdissect_arena_metadata_bytes", "Allocator metadata pages, per group.",
		  offsetof(struct group_sum, metadata) },
	};
	for (size_t f = 0; n_sums && f < sizeof(group_families) / sizeof(group_families[0]); f++) {
		family(&o, group_families[f].name, "bytes", group_families[f].help);
		for (size_t k = 0; k < n_sums; k++) {
			escape(v1, sizeof(v1), sums[k].allocator);
			snprintf(extra, sizeof(extra), "allocator=\"%s\",arena=\"%d\"", v1, sums[k].group);
			uint64_t v;
			memcpy(&v, (const char *)&sums[k] + group_families[f].offset, sizeof(v));
			sample_u(&o, group_families[f].name, extra, v);
		}
	}
	free(sums);

	family(&o, "memdissect_findings", NULL, "Anomalies seen while walking allocator structures, by severity.");
	static const char *const sev[] = { "info", "warning", "corrupt" };
	for (size_t s = 0; s < 3; s++) {
		uint64_t n = 0;
		for (size_t i = 0; i < r->n_findings; i++)
			n += r->findings[i].severity && strcmp(r->findings[i].severity, sev[s]) == 0;
		snprintf(extra, sizeof(extra), "severity=\"%s\"", sev[s]);
		sample_u(&o, "memdissect_findings", extra, n);
	}

	if (r->cgroup.valid) {
		one(&o, "memdissect_cgroup_usage_bytes", "bytes", "Memory charged to the process's cgroup.",
		    r->cgroup.usage_bytes);
		if (r->cgroup.limit_bytes != UINT64_MAX)
			one(&o, "memdissect_cgroup_limit_bytes", "bytes", "The cgroup's memory limit.",
			    r->cgroup.limit_bytes);
	}
	fputs("# EOF\n", out);
	md_gap_deinit(&g);
	if (fflush(out) == EOF || ferror(out))
		return md_error_os(errno ? errno : EIO, "writing the metrics");
	return NULL;
}

/* One exposition of several reports: each family's TYPE/UNIT/HELP lines once, then the samples
 * of every report in order (a family may not repeat in one file), one "# EOF" at the end. The
 * texts are md_render_openmetrics output: a family's lines start at its "# TYPE" line. */
struct om_family {
	char *name;
	char *header;  /* TYPE, UNIT, HELP lines */
	char *samples; /* of every text */
	size_t header_len, samples_len;
};

static bool append(char **buf, size_t *len, const char *s, size_t n)
{
	char *nb = realloc(*buf, *len + n + 1);
	if (!nb)
		return false;
	memcpy(nb + *len, s, n);
	*len += n;
	nb[*len] = 0;
	*buf = nb;
	return true;
}

struct md_error *md_openmetrics_merge(char *const *texts, size_t n_texts, FILE *out)
{
	struct om_family *fam = NULL;
	size_t n_fam = 0;
	struct md_error *err = NULL;
	for (size_t t = 0; t < n_texts && !err; t++) {
		struct om_family *cur = NULL;
		bool own_header = false;
		for (const char *line = texts[t]; line && *line && !err;) {
			const char *nl = strchr(line, '\n');
			size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
			if (strncmp(line, "# EOF", 5) == 0) {
				line += len;
				continue;
			}
			if (strncmp(line, "# TYPE ", 7) == 0) {
				const char *name = line + 7;
				size_t nlen = strcspn(name, " \n");
				cur = NULL;
				for (size_t f = 0; f < n_fam && !cur; f++)
					if (strlen(fam[f].name) == nlen && strncmp(fam[f].name, name, nlen) == 0)
						cur = &fam[f];
				own_header = !cur;
				if (!cur) {
					struct om_family *nf = realloc(fam, (n_fam + 1) * sizeof(*nf));
					if (!nf || !(nf[n_fam].name = strndup(name, nlen))) {
						if (nf)
							fam = nf;
						err = &md_error_nomem;
						break;
					}
					fam = nf;
					cur = &fam[n_fam++];
					cur->header = cur->samples = NULL;
					cur->header_len = cur->samples_len = 0;
				}
			}
			if (cur) {
				bool meta = line[0] == '#';
				if (meta ? (own_header && !append(&cur->header, &cur->header_len, line, len))
					 : !append(&cur->samples, &cur->samples_len, line, len))
					err = &md_error_nomem;
			}
			line += len;
		}
	}
	for (size_t f = 0; f < n_fam; f++) {
		if (!err) {
			if (fam[f].header)
				fputs(fam[f].header, out);
			if (fam[f].samples)
				fputs(fam[f].samples, out);
		}
		free(fam[f].name);
		free(fam[f].header);
		free(fam[f].samples);
	}
	free(fam);
	if (!err)
		fputs("# EOF\n", out);
	return err;
}
