/* A target made of in-memory bytes (see image.h). The bytes of each mapping sit in an anonymous
 * MAP_NORESERVE region of the mapping's size: pages never written cost nothing, so the sparse
 * gigabytes some allocators reserve are cheap to mirror. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "image.h"
#include "procfs.h"
#include "target_impl.h"

struct image {
	uint8_t **bytes; /* per mapping, NULL: reads as zeros */
	size_t n;
	struct md_target *donor; /* the capture the image was made from (keeps libdwfl's core) */
};

static struct md_error *image_read_present(struct md_target *t, uint64_t addr, void *buf, size_t len)
{
	struct image *im = t->impl;
	const struct md_mapping *m = md_target_find_mapping(t, addr);
	if (!m || addr + len > m->end)
		return md_error_fault(MD_ERR_FAULT, addr, "address 0x%llx is not in the image",
				      (unsigned long long)addr);
	const uint8_t *src = im->bytes[m - t->mappings];
	if (src)
		memcpy(buf, src + (addr - m->start), len);
	else
		memset(buf, 0, len);
	return NULL;
}

static void image_destroy_impl(struct md_target *t)
{
	struct image *im = t->impl;
	if (!im)
		return;
	for (size_t i = 0; i < im->n; i++)
		if (im->bytes[i])
			munmap(im->bytes[i], t->mappings[i].end - t->mappings[i].start);
	free(im->bytes);
	/* The symbols came from the donor and may point into its core: drop them first. */
	md_symbols_destroy(t->symbols);
	t->symbols = NULL;
	md_target_destroy(im->donor);
	free(im);
	t->impl = NULL;
}

static const struct md_target_ops image_ops = {
	.read_present = image_read_present,
	.backtrace = NULL,
	.destroy_impl = image_destroy_impl,
};

static int cmp_image_mapping(const void *pa, const void *pb)
{
	const struct md_image_mapping *a = *(const struct md_image_mapping *const *)pa;
	const struct md_image_mapping *b = *(const struct md_image_mapping *const *)pb;
	return a->map.start < b->map.start ? -1 : a->map.start > b->map.start;
}

static uint8_t *alloc_bytes(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

struct md_error *md_image_create(const struct md_image_mapping *maps, size_t n_maps,
				 const struct md_thread *threads, size_t n_threads,
				 struct md_target **target_ret)
{
	struct md_target *t = calloc(1, sizeof(*t));
	struct image *im = calloc(1, sizeof(*im));
	const struct md_image_mapping **order = calloc(n_maps + 1, sizeof(*order));
	if (!t || !im || !order) {
		free(t);
		free(im);
		free(order);
		return &md_error_nomem;
	}
	t->source = MD_SOURCE_CORE;
	t->ops = &image_ops;
	t->impl = im;
	md_target_cache_drop(t);
	for (size_t i = 0; i < MD_FILE_CACHE; i++)
		t->files[i].fd = -1;
	struct md_error *err = NULL;
	for (size_t i = 0; i < n_maps; i++)
		order[i] = &maps[i];
	if (n_maps > 0)
		qsort(order, n_maps, sizeof(*order), cmp_image_mapping);
	t->mappings = calloc(n_maps + 1, sizeof(*t->mappings));
	im->bytes = calloc(n_maps + 1, sizeof(*im->bytes));
	t->threads = calloc(n_threads + 1, sizeof(*t->threads));
	if (!t->mappings || !im->bytes || !t->threads) {
		err = &md_error_nomem;
		goto out;
	}
	for (size_t i = 0; i < n_maps; i++) {
		const struct md_mapping *src = &order[i]->map;
		if (src->start >= src->end || (src->start | src->end) % MD_PAGE_SIZE ||
		    (i && order[i - 1]->map.end > src->start)) {
			err = md_error_create(MD_ERR_BAD_DATA, "image mapping [0x%llx, 0x%llx) is empty, unaligned or overlaps",
					      (unsigned long long)src->start, (unsigned long long)src->end);
			goto out;
		}
		struct md_mapping *m = &t->mappings[i];
		*m = *src;
		m->path = NULL;
		m->pages = NULL;
		t->n_mappings = i + 1;
		im->n = i + 1;
		uint64_t size = src->end - src->start;
		if (src->path && !(m->path = strdup(src->path))) {
			err = &md_error_nomem;
			goto out;
		}
		if (src->pages) {
			if (!(m->pages = malloc(size / MD_PAGE_SIZE))) {
				err = &md_error_nomem;
				goto out;
			}
			memcpy(m->pages, src->pages, size / MD_PAGE_SIZE);
		}
		if (order[i]->bytes) {
			if (!(im->bytes[i] = alloc_bytes(size))) {
				err = &md_error_nomem;
				goto out;
			}
			memcpy(im->bytes[i], order[i]->bytes, size);
		}
	}
	if (n_threads)
		memcpy(t->threads, threads, n_threads * sizeof(*threads));
	t->n_threads = n_threads;
out:
	free(order);
	if (err) {
		md_target_destroy(t);
		return err;
	}
	*target_ret = t;
	return NULL;
}

/* Copy the readable pages of m from src into dst, run by run; a page that cannot be read is
 * left zero and loses its residency (the image says what the walker could have read). */
static void copy_pages(struct md_target *src, const struct md_mapping *m, uint8_t *dst, uint8_t *pages)
{
	uint64_t npages = (m->end - m->start) / MD_PAGE_SIZE;
	uint64_t i = 0;
	while (i < npages) {
		if (!pages || !(pages[i] & (MD_PAGE_PRESENT | MD_PAGE_UNKNOWN)) || (pages[i] & MD_PAGE_ZERO)) {
			i++;
			continue;
		}
		uint64_t j = i + 1;
		while (j < npages && j - i < 64 && (pages[j] & (MD_PAGE_PRESENT | MD_PAGE_UNKNOWN)) &&
		       !(pages[j] & MD_PAGE_ZERO))
			j++;
		uint64_t addr = m->start + i * MD_PAGE_SIZE;
		struct md_error *err = md_target_read(src, addr, dst + i * MD_PAGE_SIZE, (j - i) * MD_PAGE_SIZE);
		if (err) {
			md_error_destroy(err);
			for (uint64_t k = i; k < j; k++) {
				err = md_target_read(src, m->start + k * MD_PAGE_SIZE, dst + k * MD_PAGE_SIZE, MD_PAGE_SIZE);
				if (err) {
					md_error_destroy(err);
					memset(dst + k * MD_PAGE_SIZE, 0, MD_PAGE_SIZE);
					pages[k] &= (uint8_t) ~(MD_PAGE_PRESENT | MD_PAGE_UNKNOWN);
				}
			}
		}
		i = j;
	}
}

struct md_error *md_image_from_target(struct md_target *src, uint64_t max_map_bytes,
				      struct md_target **image_ret)
{
	struct md_target *t = NULL;
	struct md_error *err = md_image_create(NULL, 0, src->threads, src->n_threads, &t);
	if (err)
		return err;
	struct image *im = t->impl;
	t->mappings = realloc(t->mappings, (src->n_mappings + 1) * sizeof(*t->mappings));
	im->bytes = realloc(im->bytes, (src->n_mappings + 1) * sizeof(*im->bytes));
	if (!t->mappings || !im->bytes) {
		/* realloc failed and lost the old block: small, the process is out of memory anyway */
		md_target_destroy(t);
		return &md_error_nomem;
	}
	for (size_t i = 0; i < src->n_mappings; i++) {
		const struct md_mapping *s = &src->mappings[i];
		struct md_mapping *m = &t->mappings[i];
		*m = *s;
		m->path = NULL;
		m->pages = NULL;
		im->bytes[i] = NULL;
		t->n_mappings = im->n = i + 1;
		uint64_t size = s->end - s->start;
		if ((s->path && !(m->path = strdup(s->path))) ||
		    (s->pages && !(m->pages = malloc(size / MD_PAGE_SIZE)))) {
			md_target_destroy(t);
			return &md_error_nomem;
		}
		if (s->pages)
			memcpy(m->pages, s->pages, size / MD_PAGE_SIZE);
		if (!(s->perms & MD_PERM_READ) || !s->pages || (max_map_bytes && size > max_map_bytes))
			continue;
		if (!(im->bytes[i] = alloc_bytes(size))) {
			md_target_destroy(t);
			return &md_error_nomem;
		}
		copy_pages(src, s, im->bytes[i], m->pages);
	}
	t->pid = src->pid;
	t->source = src->source;
	t->debuginfo_disabled = src->debuginfo_disabled;
	t->symbols = src->symbols;
	src->symbols = NULL;
	im->donor = src;
	*image_ret = t;
	return NULL;
}

uint8_t *md_image_bytes(struct md_target *image, uint64_t addr, size_t len)
{
	struct image *im = image->impl;
	const struct md_mapping *m = md_target_find_mapping(image, addr);
	if (!m || len > m->end - addr)
		return NULL;
	uint8_t *b = im->bytes[m - image->mappings];
	return b ? b + (addr - m->start) : NULL;
}

/* ---- mutation scripts ---- */

#define REC_SIZE 14
#define MAX_RECORDS 256

struct undo_entry {
	uint64_t addr;  /* bytes: address; page bits: page address */
	uint8_t old[8];
	uint8_t len;    /* 0: a page's residency bits (old[0]) */
};

struct md_image_undo {
	size_t n;
	struct undo_entry e[MAX_RECORDS];
};

static bool deref(struct md_target *t, uint64_t addr, uint64_t *v)
{
	const uint8_t *b = md_image_bytes(t, addr, 8);
	if (!b || (addr & 7))
		return false;
	memcpy(v, b, 8);
	return true;
}

static uint64_t hostile_pointer(const struct md_target *t, uint64_t self, uint64_t sel)
{
	switch (sel % 6) {
	case 0: /* a hole between mappings (or below the first) */
		for (size_t i = 1; i < t->n_mappings; i++)
			if (t->mappings[i].start - t->mappings[i - 1].end >= 2 * MD_PAGE_SIZE)
				return t->mappings[i - 1].end + MD_PAGE_SIZE - 8 * (sel >> 8 & 1);
		return 0x1000;
	case 1: /* a mapping the target cannot read (guard pages) */
		for (size_t i = 0; i < t->n_mappings; i++)
			if (!(t->mappings[i].perms & MD_PERM_READ))
				return t->mappings[i].start + (sel >> 8 & 0xff) * 16;
		return 0x10;
	case 2:
		return 0x8000000000000000ULL | (sel >> 8);
	case 3:
		return self;
	case 4:
		return self - 16 * ((sel >> 8 & 0xff) + 1);
	default:
		return sel >> 8 & 0xffff;
	}
}

static bool log_bytes(struct md_target *t, struct md_image_undo *u, uint64_t addr, size_t len, uint8_t **p_ret)
{
	uint8_t *p = md_image_bytes(t, addr, len);
	if (!p || (md_target_page_bits(t, addr) & (MD_PAGE_PRESENT | MD_PAGE_UNKNOWN)) == 0 || u->n >= MAX_RECORDS)
		return false;
	struct undo_entry *e = &u->e[u->n++];
	e->addr = addr;
	e->len = (uint8_t)len;
	memcpy(e->old, p, len);
	*p_ret = p;
	return true;
}

struct md_error *md_image_mutate(struct md_target *t, const uint64_t *anchors, size_t n_anchors,
				 const uint8_t *script, size_t len, struct md_image_undo **undo_ret)
{
	struct md_image_undo *u = calloc(1, sizeof(*u));
	if (!u)
		return &md_error_nomem;
	for (size_t r = 0; r + REC_SIZE <= len && r / REC_SIZE < MAX_RECORDS && n_anchors; r += REC_SIZE) {
		const uint8_t *rec = script + r;
		uint8_t op = rec[0], a = rec[1];
		uint16_t o1, o2;
		uint64_t val;
		memcpy(&o1, rec + 2, 2);
		memcpy(&o2, rec + 4, 2);
		memcpy(&val, rec + 6, 8);
		uint64_t anchor = anchors[(a & 15) % n_anchors];
		unsigned depth = (op >> 4) & 3;
		uint64_t addr = anchor + o1;
		if (depth) {
			uint64_t p;
			if (!deref(t, anchor + (o1 & ~7u), &p))
				continue;
			if (depth >= 2 && !deref(t, p + (uint64_t)(o2 >> 8) * 8, &p))
				continue;
			if (depth >= 3 && !deref(t, p + (uint64_t)(o2 & 0xff) * 8, &p))
				continue;
			addr = p + (uint64_t)(a >> 4) * 8;
		}
		uint8_t *p;
		uint64_t w;
		switch (op & 15) {
		case 1:
			if (log_bytes(t, u, addr, 4, &p))
				memcpy(p, &val, 4);
			break;
		case 2:
			if (log_bytes(t, u, addr, 2, &p))
				memcpy(p, &val, 2);
			break;
		case 3:
			if (log_bytes(t, u, addr, 1, &p))
				p[0] = (uint8_t)val;
			break;
		case 4:
			if (log_bytes(t, u, addr, 8, &p)) {
				memcpy(&w, p, 8);
				w ^= val;
				memcpy(p, &w, 8);
			}
			break;
		case 5:
			if (log_bytes(t, u, addr, 8, &p)) {
				memcpy(&w, p, 8);
				w += (uint64_t)(int64_t)(int16_t)val;
				memcpy(p, &w, 8);
			}
			break;
		case 6:
			w = anchors[(val >> 16) % n_anchors] + (val & 0xffff);
			if (log_bytes(t, u, addr, 8, &p))
				memcpy(p, &w, 8);
			break;
		case 7:
			w = hostile_pointer(t, addr, val);
			if (log_bytes(t, u, addr, 8, &p))
				memcpy(p, &w, 8);
			break;
		case 8: {
			const uint8_t *from = md_image_bytes(t, addr + (uint64_t)(int64_t)(int16_t)val, 8);
			if (from && log_bytes(t, u, addr, 8, &p))
				memmove(p, from, 8);
			break;
		}
		case 9: {
			const struct md_mapping *m = md_target_find_mapping(t, addr);
			if (!m || !m->pages || u->n >= MAX_RECORDS)
				break;
			static const uint8_t bits[4] = { 0, MD_PAGE_PRESENT, MD_PAGE_SWAPPED,
							 MD_PAGE_PRESENT | MD_PAGE_ZERO };
			struct undo_entry *e = &u->e[u->n++];
			e->addr = MD_PAGE_DOWN(addr);
			e->len = 0;
			e->old[0] = m->pages[(e->addr - m->start) >> MD_PAGE_SHIFT];
			m->pages[(e->addr - m->start) >> MD_PAGE_SHIFT] = bits[val & 3];
			break;
		}
		default:
			if (log_bytes(t, u, addr, 8, &p))
				memcpy(p, &val, 8);
			break;
		}
	}
	md_target_cache_drop(t);
	*undo_ret = u;
	return NULL;
}

void md_image_undo(struct md_target *t, struct md_image_undo *u)
{
	if (!u)
		return;
	for (size_t i = u->n; i-- > 0;) {
		struct undo_entry *e = &u->e[i];
		if (e->len) {
			uint8_t *p = md_image_bytes(t, e->addr, e->len);
			if (p)
				memcpy(p, e->old, e->len);
		} else {
			struct md_mapping *m = (struct md_mapping *)md_target_find_mapping(t, e->addr);
			if (m && m->pages)
				m->pages[(e->addr - m->start) >> MD_PAGE_SHIFT] = e->old[0];
		}
	}
	free(u);
	md_target_cache_drop(t);
}
