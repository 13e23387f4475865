/* Bin lists. The streaming walk proves the fd/bk pairing of every free chunk through edge sums
 * (walker.h); the lists themselves are chased only when that cheap proof fails, or when the
 * arena is small enough for the target's read cache (each step is a random read). */
#include <stdio.h>

#include "walker.h"

unsigned gl_bin_index(uint64_t sz)
{
	if (sz < 0x400)
		return (unsigned)(sz >> 4);
	if ((sz >> 6) <= 48)
		return 48 + (unsigned)(sz >> 6);
	if ((sz >> 9) <= 20)
		return 91 + (unsigned)(sz >> 9);
	if ((sz >> 12) <= 10)
		return 110 + (unsigned)(sz >> 12);
	if ((sz >> 15) <= 4)
		return 119 + (unsigned)(sz >> 15);
	if ((sz >> 18) <= 2)
		return 124 + (unsigned)(sz >> 18);
	return 126;
}

#define FIRST_LARGE_BIN 64

static bool out_of_budget(struct walker *w)
{
	if (!w->chase_deadline)
		w->chase_deadline = gl_now_ms() + GL_CHASE_MS;
	return w->chase_steps++ > GL_CHASE_BUDGET || ((w->chase_steps & 1023) == 0 && gl_now_ms() > w->chase_deadline);
}

/* A chunk of this arena the chase may read: aligned and inside one of the arena's heaps. */
static bool in_arena(const struct walker *w, const struct gl_arena *a, uint64_t p)
{
	const struct heap_range *r = (p & 15) ? NULL : gl_range_of(w, p, GLIBC_MINSIZE);
	return r && &w->s->arenas[r->arena] == a;
}

/* The fd_nextsize ring of large bin i: one entry per distinct size (the first chunk of that
 * size in the bin), sizes strictly decreasing along fd_nextsize, wrapping back to the first
 * chunk, and fd_nextsize->bk_nextsize == p. Bounded by max_steps (the bin's chunk count when
 * known). Returns false when the ring is broken (a finding names the chunk). */
static bool chase_nextsize_ring(struct walker *w, struct gl_arena *a, unsigned i, uint64_t max_steps)
{
	const struct glibc_layout *l = &w->s->layout;
	uint64_t hdr = a->address + glibc_bin_header_offset(l, i);
	uint64_t first = a->bins[2 * (i - 1)];
	if (first == hdr || !in_arena(w, a, first))
		return true; /* empty, or the fd chase reports it */
	uint64_t p = first, prev_size = UINT64_MAX;
	uint64_t saved = first, power = 1, lam = 0;
	for (uint64_t steps = 0;; steps++) {
		if (out_of_budget(w))
			return true;
		uint8_t c[0x28]; /* size, fd, bk, fd_nextsize, bk_nextsize */
		struct md_error *err = md_target_read(w->t, p + 8, c, sizeof(c));
		if (err) {
			char what[64];
			snprintf(what, sizeof(what), "large bin %u: chunk 0x%llx", i, (unsigned long long)p);
			gl_unreadable(w, a, p, err, what);
			return false;
		}
		uint64_t size = gl_rd64(c) & ~GLIBC_SIZE_BITS, fdn = gl_rd64(c + 0x18), bkn = gl_rd64(c + 0x20);
		if (!fdn || !bkn) {
			gl_finding(w, a, MD_FINDING_CORRUPT, p,
				   "large bin %u: chunk 0x%llx heads its size but has fd_nextsize 0x%llx, bk_nextsize 0x%llx",
				   i, (unsigned long long)p, (unsigned long long)fdn, (unsigned long long)bkn);
			return false;
		}
		if (size >= prev_size) {
			gl_finding(w, a, MD_FINDING_CORRUPT, p,
				   "large bin %u: nextsize ring not sorted (chunk 0x%llx of size 0x%llx after size 0x%llx)", i,
				   (unsigned long long)p, (unsigned long long)size, (unsigned long long)prev_size);
			return false;
		}
		prev_size = size;
		if (!in_arena(w, a, fdn)) {
			gl_finding(w, a, MD_FINDING_CORRUPT, p, "large bin %u: chunk 0x%llx has fd_nextsize 0x%llx %s", i,
				   (unsigned long long)p, (unsigned long long)fdn,
				   (fdn & 15) ? "misaligned" : "outside the arena's heaps");
			return false;
		}
		uint64_t back = 0;
		err = md_target_read_u64(w->t, fdn + 0x28, &back);
		if (err || back != p) {
			md_error_destroy(err);
			gl_finding(w, a, MD_FINDING_CORRUPT, p,
				   "large bin %u: chunk 0x%llx has fd_nextsize 0x%llx whose bk_nextsize is 0x%llx (not back to it)",
				   i, (unsigned long long)p, (unsigned long long)fdn, (unsigned long long)back);
			return false;
		}
		if (fdn == first)
			return true;
		if (steps >= max_steps || fdn == saved) {
			gl_finding(w, a, MD_FINDING_CORRUPT, p,
				   "large bin %u: nextsize ring does not return to its first chunk 0x%llx (cycle at 0x%llx)", i,
				   (unsigned long long)first, (unsigned long long)fdn);
			return false;
		}
		if (++lam == power) {
			saved = fdn;
			power <<= 1;
			lam = 0;
		}
		p = fdn;
	}
}

void gl_chase_nextsize(struct walker *w, struct gl_arena *a)
{
	bool ok = true;
	for (unsigned i = FIRST_LARGE_BIN; i < GLIBC_NBINS; i++)
		ok &= chase_nextsize_ring(w, a, i, a->nextsize_links + 1);
	a->nextsize_chased = true;
	if (ok && a->nedge_fd != a->nedge_bk)
		gl_finding(w, a, MD_FINDING_CORRUPT, a->address,
			   "fd_nextsize/bk_nextsize links of the free chunks do not pair up (a chunk outside every large bin ring)");
}

void gl_chase_bins(struct walker *w, struct gl_arena *a)
{
	const struct glibc_layout *l = &w->s->layout;
	a->bins_chased = true;
	a->list_bin_count = a->list_bin_bytes = 0;
	unsigned before = a->findings;
	for (unsigned i = 1; i < GLIBC_NBINS; i++) {
		uint64_t hdr = a->address + glibc_bin_header_offset(l, i);
		uint64_t prev = hdr, p = a->bins[2 * (i - 1) + 1];
		uint64_t saved = hdr, power = 1, lam = 0, in_bin = 0;
		bool broken = false;
		while (p != hdr) {
			if (out_of_budget(w)) {
				gl_finding(w, a, MD_FINDING_WARNING, hdr, "bin %u: list check stopped (time budget)", i);
				a->bins_chased = false;
				return;
			}
			if (!in_arena(w, a, p)) {
				gl_finding(w, a, MD_FINDING_CORRUPT, prev, "bin %u: chunk 0x%llx has bk 0x%llx %s", i,
					   (unsigned long long)prev, (unsigned long long)p,
					   (p & 15) ? "misaligned" : "outside the arena's heaps");
				broken = true;
				break;
			}
			uint8_t c[24]; /* size, fd, bk */
			struct md_error *err = md_target_read(w->t, p + 8, c, sizeof(c));
			if (err) {
				char what[64];
				snprintf(what, sizeof(what), "bin %u: chunk 0x%llx", i, (unsigned long long)p);
				gl_unreadable(w, a, p, err, what);
				broken = true;
				break;
			}
			uint64_t size = gl_rd64(c) & ~GLIBC_SIZE_BITS, fd = gl_rd64(c + 8), bk = gl_rd64(c + 16);
			if (fd != prev)
				gl_finding(w, a, MD_FINDING_CORRUPT, p,
					   "bin %u: chunk 0x%llx has fd 0x%llx, expected 0x%llx (fd->bk != p)", i,
					   (unsigned long long)p, (unsigned long long)fd, (unsigned long long)prev);
			bool size_ok = i == 1 ? size >= GLIBC_MINSIZE && !(size & 15) : gl_bin_index(size) == i;
			if (!size_ok)
				gl_finding(w, a, MD_FINDING_CORRUPT, p, "bin %u: chunk 0x%llx has size 0x%llx of bin %u", i,
					   (unsigned long long)p, (unsigned long long)size, gl_bin_index(size));
			a->list_bin_count++;
			a->list_bin_bytes += size;
			in_bin++;
			prev = p;
			p = bk;
			if (p != hdr && p == saved) {
				gl_finding(w, a, MD_FINDING_CORRUPT, prev, "bin %u: cyclic list at 0x%llx", i,
					   (unsigned long long)p);
				broken = true;
				break;
			}
			if (++lam == power) {
				saved = p;
				power <<= 1;
				lam = 0;
			}
		}
		if (i >= FIRST_LARGE_BIN && !broken && in_bin)
			chase_nextsize_ring(w, a, i, in_bin);
	}
	a->nextsize_chased = true;
	if (a->findings != before)
		a->bins_chased = false;
}
