/* Finding obmalloc's state (docs/pymalloc.md §2):
 *   3.8-3.11  file statics `arenas`, `maxarenas`, `raw_allocated_blocks`: from .symtab when the
 *             module has one, otherwise decoded from the exported _Py_GetAllocatedBlocks, whose
 *             first RIP-relative loads are exactly those three (order varies with LTO);
 *   3.12      struct _obmalloc_state embedded in every PyInterpreterState;
 *   3.13      PyInterpreterState.obmalloc points at it (shared states deduplicated).
 * Offsets come from DWARF when the module has it, else from the built-in table, and the two are
 * compared when both exist. The interpreter list itself is read in the pause (pym_walk.c). */
#include <capstone/capstone.h>
#include <stdio.h>
#include <string.h>

#include "pym.h"

const char *pym_mode_name(enum pym_mode m)
{
	switch (m) {
	case PYM_MODE_PYMALLOC:
		return "pymalloc";
	case PYM_MODE_DEBUG:
		return "debug";
	case PYM_MODE_MALLOC:
		return "malloc";
	case PYM_MODE_MIMALLOC:
		return "mimalloc";
	case PYM_MODE_FREE_THREADED:
		return "free-threaded";
	default:
		return "unknown";
	}
}

static bool sym_addr(struct md_target *t, const struct md_module *m, const char *name, uint64_t *addr_ret,
		     enum md_symbol_source *src_ret)
{
	struct md_symbol s;
	struct md_error *err = md_target_symbol(t, m, name, &s);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	*addr_ret = s.address;
	if (src_ret)
		*src_ret = s.source;
	return true;
}

/* A static that LTO may have renamed "name.lto_priv.0". */
static bool static_addr(struct md_target *t, const struct md_module *m, const char *name, uint64_t *addr_ret)
{
	char lto[96];
	snprintf(lto, sizeof(lto), "%s.lto_priv.0", name);
	return sym_addr(t, m, name, addr_ret, NULL) || sym_addr(t, m, lto, addr_ret, NULL);
}

/* RIP-relative loads `mov disp(%rip), %reg` in the first bytes of a function: target address and
 * operand size, in program order. */
static size_t rip_loads(struct md_target *t, const struct md_module *m, const char *fn, uint64_t *addrs,
			uint8_t *sizes, size_t max)
{
	struct md_symbol s;
	struct md_error *err = md_target_symbol(t, m, fn, &s);
	if (err) {
		md_error_destroy(err);
		return 0;
	}
	uint8_t code[256];
	size_t len = s.size && s.size < sizeof(code) ? s.size : sizeof(code);
	err = md_target_read(t, s.address, code, len);
	if (err) {
		md_error_destroy(err);
		return 0;
	}
	csh cs;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return 0;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	cs_insn *insn = NULL;
	size_t n = cs_disasm(cs, code, len, s.address, 0, &insn), found = 0;
	for (size_t i = 0; i < n && found < max; i++) {
		if (!insn[i].detail)
			continue;
		const cs_x86 *x = &insn[i].detail->x86;
		const cs_x86_op *mem = NULL;
		if (insn[i].id == X86_INS_MOV && x->op_count == 2 && x->operands[0].type == X86_OP_REG)
			mem = &x->operands[1];
		else if ((insn[i].id == X86_INS_JMP || insn[i].id == X86_INS_CALL) && x->op_count == 1)
			mem = &x->operands[0]; /* PIC: `jmp *_PyObject+8(%rip)` */
		if (!mem || mem->type != X86_OP_MEM || mem->mem.base != X86_REG_RIP)
			continue;
		addrs[found] = insn[i].address + insn[i].size + (uint64_t)mem->mem.disp;
		sizes[found++] = mem->size;
	}
	if (n)
		cs_free(insn, n);
	cs_close(&cs);
	return found;
}

static bool read_u64(struct md_target *t, uint64_t addr, uint64_t *v)
{
	struct md_error *err = md_target_read_u64(t, addr, v);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	return true;
}

static bool read_u32(struct md_target *t, uint64_t addr, uint32_t *v)
{
	struct md_error *err = md_target_read(t, addr, v, 4);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	return true;
}

/* Is v a plausible `arenas` for maxarenas: NULL with 0, or a readable array whose slots hold 0 or
 * page-aligned addresses. */
static bool plausible_arenas(struct md_target *t, uint64_t v, uint32_t maxarenas)
{
	if (maxarenas == 0)
		return v == 0;
	if (maxarenas % 16 || maxarenas > PYM_MAX_ARENAS || !v || v % 8)
		return false;
	uint64_t first;
	if (!read_u64(t, v, &first) || !read_u64(t, v + (uint64_t)(maxarenas - 1) * PYM_ARENA_OBJECT, &first))
		return false;
	return (first & (MD_PAGE_SIZE - 1)) == 0;
}

/* 3.10/3.11 without symbols: classify the three loads of _Py_GetAllocatedBlocks. */
static struct md_error *decode_allocated_blocks(struct md_target *t, struct pym_roots *r)
{
	uint64_t a[8];
	uint8_t sz[8];
	size_t n = rip_loads(t, r->module, "_Py_GetAllocatedBlocks", a, sz, 8);
	uint64_t max_addr = 0, q[2];
	size_t nq = 0;
	for (size_t i = 0; i < n && i < 3; i++) {
		if (sz[i] == 4 && !max_addr)
			max_addr = a[i];
		else if (sz[i] == 8 && nq < 2)
			q[nq++] = a[i];
	}
	uint32_t maxarenas;
	if (!max_addr || nq != 2 || !read_u32(t, max_addr, &maxarenas))
		return md_error_create(MD_ERR_NOT_FOUND,
				       "pymalloc: _Py_GetAllocatedBlocks does not load maxarenas, arenas and "
				       "raw_allocated_blocks as expected (%zu RIP-relative loads)", n);
	uint64_t v0 = 0, v1 = 0;
	if (!read_u64(t, q[0], &v0) || !read_u64(t, q[1], &v1))
		return md_error_create(MD_ERR_FAULT, "pymalloc: the statics loaded by _Py_GetAllocatedBlocks are unreadable");
	bool p0 = plausible_arenas(t, v0, maxarenas), p1 = plausible_arenas(t, v1, maxarenas);
	if (p0 == p1) {
		/* Tie (e.g. both zero with PYTHONMALLOC=malloc): arenas sits next to maxarenas in every
		 * build seen (+8 or +16), raw_allocated_blocks elsewhere. */
		uint64_t d0 = q[0] > max_addr ? q[0] - max_addr : max_addr - q[0];
		uint64_t d1 = q[1] > max_addr ? q[1] - max_addr : max_addr - q[1];
		if (d0 != d1 && (d0 <= 32 || d1 <= 32) && (maxarenas == 0 || p0)) {
			p0 = d0 < d1;
			p1 = !p0;
		}
	}
	if (p0 == p1)
		return md_error_create(MD_ERR_BAD_DATA,
				       "pymalloc: cannot tell arenas from raw_allocated_blocks among the loads of "
				       "_Py_GetAllocatedBlocks (0x%llx, 0x%llx; maxarenas %u)",
				       (unsigned long long)v0, (unsigned long long)v1, maxarenas);
	r->global.maxarenas_addr = max_addr;
	r->global.arenas_addr = p1 ? q[1] : q[0];
	r->global.raw_addr = p1 ? q[0] : q[1];
	r->source = MD_SYMSRC_HEURISTIC;
	return NULL;
}

/* Offset of a DWARF member, or fallback; records the comparison. */
static uint64_t layout(struct md_target *t, struct pym_roots *r, bool no_debug, const char *st, const char *member,
		       uint64_t builtin)
{
	if (no_debug)
		return builtin;
	uint64_t off, size;
	struct md_error *err = md_target_member(t, r->module, st, member, &off, &size);
	if (err) {
		md_error_destroy(err);
		return builtin;
	}
	r->dwarf_compared = true;
	if (off != builtin) {
		r->builtin_matches_dwarf = false;
		size_t len = strlen(r->mismatch);
		snprintf(r->mismatch + len, sizeof(r->mismatch) - len, "%s%s.%s dwarf 0x%llx built-in 0x%llx",
			 len ? "; " : "", st, member, (unsigned long long)off, (unsigned long long)builtin);
	}
	return off;
}

static void version_from_name(const char *name, struct pym_roots *r)
{
	const char *p = name ? strstr(name, "python3.") : NULL;
	if (!p)
		return;
	unsigned minor = 0;
	if (sscanf(p + 8, "%u", &minor) == 1) {
		r->major = 3;
		r->minor = minor;
	}
}

static struct md_error *locate_312(struct md_target *t, struct pym_roots *r, bool no_debug)
{
	bool v13 = r->minor >= 13;
	uint64_t interps = layout(t, r, no_debug, "pyruntimestate", "interpreters", v13 ? 0x270 : 0x20);
	r->off_interp_head = interps + layout(t, r, no_debug, "pyinterpreters", "head", 8);
	r->off_interp_main = interps + layout(t, r, no_debug, "pyinterpreters", "main", 16);
	r->off_next = layout(t, r, no_debug, "_is", "next", v13 ? 0x1c60 : 0);
	r->off_id = layout(t, r, no_debug, "_is", "id", v13 ? 0x1c68 : 8);
	r->off_obmalloc = layout(t, r, no_debug, "_is", "obmalloc", v13 ? 0x2a30 : 0xf78);
	r->off_flags = layout(t, r, no_debug, "_is", "feature_flags", v13 ? 0x20f8 : 0x6b0);
	r->have_flags = r->off_flags != 0;
	r->obmalloc_is_pointer = v13;
	uint64_t alloc = layout(t, r, no_debug, "pyruntimestate", "allocators", v13 ? 0x2b8 : 0x58);
	uint64_t std = layout(t, r, no_debug, "_pymem_allocators", "standard", 8);
	r->obj_allocator = r->runtime + alloc + std + 80; /* standard.obj after raw and mem (40 B each) */
	if (v13) {
		char dbg[24];
		struct md_error *err = md_target_read(t, r->runtime, dbg, sizeof(dbg));
		if (err)
			return md_error_wrap(err, "pymalloc: reading _Py_DebugOffsets");
		if (memcmp(dbg, "xdebugpy", 8) != 0)
			return md_error_create(MD_ERR_BAD_DATA, "pymalloc: _PyRuntime does not start with the \"xdebugpy\" cookie");
		uint64_t ft_off = layout(t, r, no_debug, "_Py_DebugOffsets", "free_threaded", 16);
		uint64_t ft = 0;
		if (ft_off < sizeof(dbg))
			memcpy(&ft, dbg + ft_off, 8);
		r->free_threaded = ft != 0;
	}
	/* Sanity: interpreters.main must be a readable pointer. */
	uint64_t main_interp;
	if (!read_u64(t, r->runtime + r->off_interp_main, &main_interp) || !main_interp)
		return md_error_create(MD_ERR_BAD_DATA, "pymalloc: _PyRuntime.interpreters.main (+0x%llx) is not a pointer",
				       (unsigned long long)r->off_interp_main);
	return NULL;
}

struct md_error *pym_locate(struct md_target *t, bool no_debug, struct pym_roots *r)
{
	memset(r, 0, sizeof(*r));
	r->builtin_matches_dwarf = true;
	size_t nmods;
	const struct md_module *mods = md_target_modules(t, &nmods);
	for (size_t i = 0; i < nmods && !r->module; i++) {
		uint64_t a, b;
		if (sym_addr(t, &mods[i], "_PyRuntime", &a, NULL) && sym_addr(t, &mods[i], "PyType_Type", &b, NULL)) {
			r->module = &mods[i];
			r->runtime = a;
			r->pytype_type = b;
		}
	}
	if (!r->module)
		return NULL; /* not a CPython process */
	uint64_t pyver;
	uint32_t hex;
	if (sym_addr(t, r->module, "Py_Version", &pyver, NULL) && read_u32(t, pyver, &hex)) {
		r->major = hex >> 24;
		r->minor = (hex >> 16) & 0xff;
		r->micro = (hex >> 8) & 0xff;
		r->micro_known = true;
	} else {
		version_from_name(md_target_module_file(t, r->module), r);
		if (!r->major)
			version_from_name(r->module->name, r);
	}
	if (r->major != 3 || r->minor < 8 || r->minor > 13)
		return md_error_create(MD_ERR_UNSUPPORTED, "pymalloc: CPython %u.%u is not supported (3.8-3.13)", r->major,
				       r->minor);
	r->arena_size = r->minor >= 10 ? (1u << 20) : (256u << 10);
	r->pool_size = r->minor >= 10 ? (16u << 10) : (4u << 10);
	r->source = MD_SYMSRC_SYMTAB;
	static_addr(t, r->module, "_PyObject_Malloc", &r->fn_pymalloc);
	static_addr(t, r->module, "_PyMem_DebugMalloc", &r->fn_debug);
	/* GC lists (census of objects outside pymalloc): 3.10-3.13, interp->gc.generations[]. */
	if (r->minor >= 10) {
		static const uint64_t gc_off[] = {616, 648, 112, 7400}; /* 3.10 .. 3.13 (pyenv DWARF) */
		uint64_t gc = layout(t, r, no_debug, "_is", "gc", gc_off[r->minor - 10]);
		r->off_gc_generations = gc + layout(t, r, no_debug, "_gc_runtime_state", "generations", 24);
		if (r->minor < 12)
			r->off_interp_main = layout(t, r, no_debug, "pyruntimestate", "interpreters", r->minor == 10 ? 24 : 32) +
					     layout(t, r, no_debug, "pyinterpreters", "main", 16);
	}
	static_addr(t, r->module, "_PyObject_MiMalloc", &r->fn_mimalloc);
	if (r->minor >= 12) {
		struct md_error *err = locate_312(t, r, no_debug);
		if (err)
			return err;
		if (r->dwarf_compared)
			r->source = MD_SYMSRC_DWARF;
		snprintf(r->how, sizeof(r->how),
			 "_PyRuntime 0x%llx, interpreters.head +0x%llx, PyInterpreterState.obmalloc +0x%llx%s (%s)",
			 (unsigned long long)r->runtime, (unsigned long long)r->off_interp_head,
			 (unsigned long long)r->off_obmalloc, r->obmalloc_is_pointer ? " (pointer)" : " (embedded)",
			 r->dwarf_compared ? "dwarf" : "built-in table");
		return NULL;
	}
	r->global.interp_id = -1;
	bool have = static_addr(t, r->module, "arenas", &r->global.arenas_addr) &&
		    static_addr(t, r->module, "maxarenas", &r->global.maxarenas_addr);
	if (have) {
		if (!static_addr(t, r->module, "raw_allocated_blocks", &r->global.raw_addr))
			static_addr(t, r->module, "_Py_AllocatedBlocks", &r->allocated_blocks_3_8);
		if (!static_addr(t, r->module, "narenas_currently_allocated", &r->global.current_addr) ||
		    !static_addr(t, r->module, "ntimes_arena_allocated", &r->global.ntimes_addr) ||
		    !static_addr(t, r->module, "narenas_highwater", &r->global.highwater_addr))
			r->global.current_addr = r->global.ntimes_addr = r->global.highwater_addr = 0;
		static_addr(t, r->module, "_PyObject", &r->obj_allocator);
		snprintf(r->how, sizeof(r->how), "statics arenas 0x%llx, maxarenas 0x%llx from .symtab",
			 (unsigned long long)r->global.arenas_addr, (unsigned long long)r->global.maxarenas_addr);
		return NULL;
	}
	if (r->minor < 10)
		return md_error_create(MD_ERR_NOT_FOUND,
				       "pymalloc: CPython 3.%u without symbols: the statics arenas/maxarenas are not "
				       "in .symtab and only 3.10+ can be decoded", r->minor);
	struct md_error *err = decode_allocated_blocks(t, r);
	if (err)
		return err;
	/* PyObject_Malloc is `_PyObject.malloc(_PyObject.ctx, n)`: its two loads 8 bytes apart. */
	uint64_t a[4];
	uint8_t sz[4];
	size_t n = rip_loads(t, r->module, "PyObject_Malloc", a, sz, 4);
	if (n >= 2 && sz[0] == 8 && sz[1] == 8 && (a[0] > a[1] ? a[0] - a[1] : a[1] - a[0]) == 8)
		r->obj_allocator = a[0] < a[1] ? a[0] : a[1];
	snprintf(r->how, sizeof(r->how),
		 "decoded _Py_GetAllocatedBlocks: maxarenas 0x%llx, arenas 0x%llx, raw_allocated_blocks 0x%llx; "
		 "_PyObject %s",
		 (unsigned long long)r->global.maxarenas_addr, (unsigned long long)r->global.arenas_addr,
		 (unsigned long long)r->global.raw_addr, r->obj_allocator ? "decoded from PyObject_Malloc" : "not found");
	return NULL;
}
