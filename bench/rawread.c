#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* The raw cost to beat: a process_vm_readv pass over every resident page of the target's
 * private writable anonymous mappings (its heaps), pagemap-guided, 1 MiB batches.
 * "rawread PID [READERS]": READERS threads (default 1) each take a contiguous share of those
 * bytes (the ranges split by address so that each share spans the same number of bytes).
 * Prints "bytes N seconds S". */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { BATCH = 256, MAX_RANGES = 65536, MAX_READERS = 16 };

struct range {
	uint64_t start, end;
};

struct reader {
	pthread_t thread;
	int pid, pagemap;
	const struct range *ranges;
	size_t n_ranges;
	uint64_t from, to; /* this reader's share, as offsets into the ranges laid end to end */
	uint64_t bytes;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read the resident pages of [s, e) in batches of BATCH pages. */
static uint64_t read_span(struct reader *r, uint8_t *buf, uint64_t s, uint64_t e)
{
	uint64_t ent[BATCH], total = 0;
	struct iovec lv[BATCH], rv[BATCH];
	for (uint64_t a = s; a < e; a += BATCH * 4096) {
		size_t n = (size_t)((e - a) / 4096 < BATCH ? (e - a) / 4096 : BATCH);
		if (pread(r->pagemap, ent, n * 8, (off_t)(a / 4096 * 8)) != (ssize_t)(n * 8))
			break;
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (!(ent[i] >> 63))
				continue;
			lv[k].iov_base = buf + i * 4096;
			lv[k].iov_len = 4096;
			rv[k].iov_base = (void *)(uintptr_t)(a + i * 4096);
			rv[k].iov_len = 4096;
			k++;
		}
		if (k) {
			ssize_t got = process_vm_readv(r->pid, lv, k, rv, k, 0);
			if (got > 0)
				total += (uint64_t)got;
		}
	}
	return total;
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t *buf = aligned_alloc(4096, BATCH * 4096);
	if (!buf)
		return NULL;
	uint64_t off = 0;
	for (size_t i = 0; i < r->n_ranges; i++) {
		uint64_t len = r->ranges[i].end - r->ranges[i].start;
		uint64_t lo = r->from > off ? r->from - off : 0, hi = r->to - off < len ? r->to - off : len;
		if (r->to > off && lo < hi)
			r->bytes += read_span(r, buf, r->ranges[i].start + lo, r->ranges[i].start + hi);
		off += len;
	}
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3)
		return 2;
	int pid = atoi(argv[1]);
	int readers = argc > 2 ? atoi(argv[2]) : 1;
	if (readers < 1 || readers > MAX_READERS)
		return 2;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	FILE *f = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	int pm = open(path, O_RDONLY);
	if (!f || pm < 0)
		return 1;
	static struct range ranges[MAX_RANGES];
	size_t n_ranges = 0;
	uint64_t span = 0;
	double t0 = now(); /* the single reader has always read the maps inside its time */
	char line[4096];
	while (fgets(line, sizeof(line), f) && n_ranges < MAX_RANGES) {
		uint64_t s, e;
		char perms[8];
		unsigned long long off;
		unsigned dmaj, dmin;
		unsigned long ino;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %llx %x:%x %lu", &s, &e, perms, &off, &dmaj, &dmin, &ino) != 7)
			continue;
		if (perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p' || ino != 0 || strstr(line, "[stack]"))
			continue;
		ranges[n_ranges++] = (struct range){ s, e };
		span += e - s;
	}
	/* Shares of whole batches, so that each reader's batches are those of the single pass. */
	uint64_t share = (span / (uint64_t)readers + BATCH * 4096 - 1) / (BATCH * 4096) * (BATCH * 4096);
	struct reader r[MAX_READERS];
	for (int i = 0; i < readers; i++) {
		uint64_t from = share * (uint64_t)i, to = from + share;
		r[i] = (struct reader){ .pid = pid, .pagemap = pm, .ranges = ranges, .n_ranges = n_ranges,
					.from = from < span ? from : span, .to = to < span ? to : span };
	}
	uint64_t total = 0;
	if (readers == 1) {
		reader_main(&r[0]);
	} else {
		for (int i = 0; i < readers; i++)
			if (pthread_create(&r[i].thread, NULL, reader_main, &r[i]) != 0)
				return 1;
		for (int i = 0; i < readers; i++)
			pthread_join(r[i].thread, NULL);
	}
	for (int i = 0; i < readers; i++)
		total += r[i].bytes;
	double t1 = now();
	printf("bytes %" PRIu64 " seconds %.6f\n", total, t1 - t0);
	return 0;
}
