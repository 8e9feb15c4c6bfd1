"""Texts that exercise every rule of the normalizer, in the languages with tables and some without: shared by
the property tests of the normalized text (test_normalize), of one pass of its rules (test_rewrite_scan) and
of the timings mapped back to it (test_written_timings)."""

from __future__ import annotations

from hypothesis import strategies as st

TRICKY = st.sampled_from([
    "$4.99", "3:30", "pm", "Dr.", "Smith", "2nd", "1,200", "km", "e.g.", "50%", "+1", "555-123-4567", "AT&T",
    "NASA", "FBI", "https://example.com/x", "john@example.com", "2024-03-15", "March", "15,", "1999", "etc.",
    "4,99", "€", "1.200", "15h45", "1er", "M.", "Mme", "z.B.", "2º", "Sr.", "#", "&", "@", "=", "-5", "3.14.15",
    "hello", "world.", "—", "(a)", "U.S.", "VIII", "我有25个", "١٢٣", "1990s", "'80s", "3/4", "-5°C",
    "9:05:30", "1:30:00", "45:30", "24:30", "4111 1111 1111 1111", "0042-7781-9930-1122", "$.50", "Mrs.", "and",
    "1900s", "am 15.03.", "8.30 Uhr", "1-800-555-1234",
    "5-10", "20-25°C", "$5-$10", "$5-10 million", "10–20%", "1990-95", "9:00-17:00", "3-5pm", "8.30-9.30 Uhr", "3-2",
    "5-10-15", "-10-5", "555-1234", "between", "entre", "1,5-2,5", "-",
    "😀", "👨\u200d👩\u200d👧\u200d👦", "1\ufe0f\u20e3", "Cafe\u0301", "𝐇𝐢", "ｆｕｌｌ", "ofﬁce", "soft\u00adhyphen", "\u200b",
    "&amp;", "Caf&eacute;", "&#x1F600;", "&nbsp;", "\n# Title", "## 2",
])
LANGUAGES = st.sampled_from(["en", "fr", "de", "es", "it", "pt", "en-GB", "pt-BR", "ru", "zh", "xx"])
TEXTS = st.one_of(st.lists(TRICKY, max_size=12).map(" ".join), st.text(max_size=60),
                  st.lists(st.one_of(TRICKY, st.text(max_size=6)), max_size=8).map(" ".join))
