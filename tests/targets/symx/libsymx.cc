/* The shared object symx_truth dlopens (tests/check_symbols.c, issue 13): C++ types inside
 * namespaces, a nested class, an anonymous namespace, a derived class, bit-fields, and a
 * __thread variable that, in a dlopen'ed object, lives in dynamic TLS. Built twice, with DWARF 5
 * (DW_AT_data_bit_offset) and DWARF 4 (GCC's DW_AT_bit_offset). symx_truth() prints what the
 * compiler made of the layouts: offsets by address arithmetic, bit-field positions by setting each
 * field's bits in a zeroed object and looking where they landed. */
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace symx {
namespace inner {
struct Span {
	uint64_t first_page;
	uint32_t num_pages;
	Span *next;
	struct Link {
		Span *prev;
		uint16_t tag;
		uint64_t weight;
	} link;
};
struct Flags {
	uint32_t word;
	unsigned sampled : 1;
	unsigned size_class : 12;
	unsigned location : 3;
};
} // namespace inner
class Base {
public:
	uint64_t base_word;
	uint32_t base_small;
};
class Derived : public Base {
public:
	uint32_t own;
	char name[12];
};
} // namespace symx

namespace {
struct Hidden {
	uint64_t h0;
	uint32_t h1;
};
} // namespace

struct SymxBits {
	uint8_t lead;
	unsigned a : 3;
	unsigned b : 7;
	int c : 5;
	unsigned long long d : 40;
	uint16_t tail;
	unsigned e : 1;
};

__thread uint64_t symx_tls_value;

/* Lowest and highest bit set in an object: where a bit-field lies. */
static void set_bits(const void *object, size_t size, unsigned *low_ret, unsigned *count_ret)
{
	const unsigned char *p = static_cast<const unsigned char *>(object);
	unsigned low = ~0u, high = 0;
	for (size_t i = 0; i < size * 8; i++) {
		if (p[i / 8] & (1u << (i % 8))) {
			low = i < low ? (unsigned)i : low;
			high = (unsigned)i;
		}
	}
	*low_ret = low;
	*count_ret = high - low + 1;
}

#define OFF(obj, field) ((size_t)((const char *)&(obj).field - (const char *)&(obj)))
#define SAY(...) (n += (size_t)snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__))
#define BITS(type, name, field, ones)                                                                   \
	do {                                                                                            \
		type v;                                                                                 \
		memset(static_cast<void *>(&v), 0, sizeof(v));                                          \
		v.field = ones;                                                                         \
		unsigned low, count;                                                                    \
		set_bits(&v, sizeof(v), &low, &count);                                                  \
		SAY("bits." name "." #field " %u %u\n", low, count);                                    \
	} while (0)

extern "C" size_t symx_truth(char *buf, size_t len)
{
	size_t n = 0;
	symx::inner::Span span{};
	SAY("span.size %zu\nspan.num_pages %zu\nspan.next %zu\nspan.link %zu\n", sizeof(span), OFF(span, num_pages),
	    OFF(span, next), OFF(span, link));
	symx::inner::Span::Link link{};
	SAY("link.size %zu\nlink.tag %zu\nlink.weight %zu\n", sizeof(link), OFF(link, tag), OFF(link, weight));
	symx::Derived derived{};
	SAY("derived.size %zu\nderived.base_small %zu\nderived.own %zu\nderived.name %zu\n", sizeof(derived),
	    OFF(derived, base_small), OFF(derived, own), OFF(derived, name));
	Hidden hidden{};
	SAY("hidden.size %zu\nhidden.h1 %zu\n", sizeof(hidden), OFF(hidden, h1));
	SymxBits bits{};
	SAY("bits.size %zu\nbits.tail %zu\n", sizeof(bits), OFF(bits, tail));
	BITS(SymxBits, "SymxBits", a, 7);
	BITS(SymxBits, "SymxBits", b, 127);
	BITS(SymxBits, "SymxBits", c, -1);
	BITS(SymxBits, "SymxBits", d, (1ULL << 40) - 1);
	BITS(SymxBits, "SymxBits", e, 1);
	BITS(symx::inner::Flags, "Flags", sampled, 1);
	BITS(symx::inner::Flags, "Flags", size_class, 4095);
	BITS(symx::inner::Flags, "Flags", location, 7);
	return n;
}

/* The calling thread's variable: the first call allocates the thread's block. */
extern "C" uint64_t *symx_tls(void)
{
	return &symx_tls_value;
}
