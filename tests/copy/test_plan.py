"""s3s3.copy.plan: which plan copies an object, for every combination of what is known."""

from __future__ import annotations

import pytest

from s3s3.copy.plan import Known, Plan, choose

MiB = 1024 * 1024
SMALL, LARGE = 1 * MiB, 64 * MiB  # around the default multipart_threshold of 8 MiB


@pytest.mark.parametrize(
    ("known", "plan"),
    [
        # same store, same identity: whatever else is known, the store copies
        (Known(LARGE, md5_known=False, verify_md5=True, same_store=True), Plan.SERVER_SIDE),
        (Known(SMALL, md5_known=True, verify_md5=False, same_store=True, multipart=False), Plan.SERVER_SIDE),
        # up to the threshold: one PUT from memory, whatever the destination's options
        (Known(SMALL, md5_known=False, verify_md5=False), Plan.PUT_BUFFERED),
        (Known(SMALL, md5_known=True, verify_md5=True, multipart=False, ranges=False), Plan.PUT_BUFFERED),
        (Known(8 * MiB, md5_known=False, verify_md5=False), Plan.PUT_BUFFERED),  # the threshold itself
        # multipart off: one streamed PUT, its MD5 known up front or learnt by a first read
        (Known(LARGE, md5_known=True, verify_md5=False, multipart=False), Plan.PUT_STREAMED),
        (Known(LARGE, md5_known=False, verify_md5=False, multipart=False), Plan.PUT_HASHED_FIRST),
        (Known(LARGE, md5_known=False, verify_md5=True, multipart=False), Plan.PUT_HASHED_FIRST),
        # the whole object's MD5 is wanted (to check the source's, or to verify): parts read in order
        (Known(LARGE, md5_known=True, verify_md5=False), Plan.PARTS_IN_ORDER),
        (Known(LARGE, md5_known=False, verify_md5=True), Plan.PARTS_IN_ORDER),
        (Known(LARGE, md5_known=True, verify_md5=False, source_part_size=16 * MiB), Plan.PARTS_IN_ORDER),
        # a transport that does not stream ranges (boto3): parts read in order
        (Known(LARGE, md5_known=False, verify_md5=False, ranges=False), Plan.PARTS_IN_ORDER),
        (Known(LARGE, md5_known=False, verify_md5=False, ranges=False, source_part_size=16 * MiB),
         Plan.PARTS_IN_ORDER),  # fmt: skip
        # no MD5 to check, both on the lean path: parts from ranges
        (Known(LARGE, md5_known=False, verify_md5=False), Plan.PARTS_FROM_RANGES),
        (Known(LARGE, md5_known=False, verify_md5=False, source_part_size=16 * MiB), Plan.PART_FOR_PART),
        # a destination whose part ETags prove nothing: each part whole with its Content-MD5
        (Known(LARGE, md5_known=False, verify_md5=False, part_etags_md5=False), Plan.WHOLE_PARTS_FROM_RANGES),
        (Known(LARGE, md5_known=False, verify_md5=False, part_etags_md5=False, source_part_size=16 * MiB),
         Plan.WHOLE_PARTS_FROM_RANGES),  # fmt: skip
        # a plain-MD5 source and a destination that checks Content-MD5: one streamed PUT the store proves
        (Known(LARGE, md5_known=True, verify_md5=False, md5_is_etag=True, store_checks_md5=True), Plan.PUT_PROVEN),
        (Known(LARGE, md5_known=True, verify_md5=False, md5_is_etag=True, store_checks_md5=True, multipart=False),
         Plan.PUT_PROVEN),  # fmt: skip
        (Known(1024 * MiB, md5_known=True, verify_md5=False, md5_is_etag=True, store_checks_md5=True), Plan.PUT_PROVEN),
        # ... but not past proven_put_max (parts are retried alone), nor with verify_md5, nor where the store
        # does not check, nor for an MD5 s3s3 recorded (s3s3-md5: not the store's ETag), nor for small ones
        (Known(1025 * MiB, md5_known=True, verify_md5=False, md5_is_etag=True, store_checks_md5=True),
         Plan.PARTS_IN_ORDER),  # fmt: skip
        (Known(LARGE, md5_known=True, verify_md5=True, md5_is_etag=True, store_checks_md5=True), Plan.PARTS_IN_ORDER),
        (Known(LARGE, md5_known=True, verify_md5=False, md5_is_etag=True), Plan.PARTS_IN_ORDER),
        (Known(LARGE, md5_known=True, verify_md5=False, store_checks_md5=True), Plan.PARTS_IN_ORDER),
        (Known(SMALL, md5_known=True, verify_md5=False, md5_is_etag=True, store_checks_md5=True), Plan.PUT_BUFFERED),
        # a lower threshold sends smaller objects in parts
        (Known(SMALL, md5_known=False, verify_md5=False, threshold=512 * 1024), Plan.PARTS_FROM_RANGES),
    ],
    ids=lambda value: value.value if isinstance(value, Plan) else "",
)
def test_the_plan_follows_from_what_is_known(known: Known, plan: Plan) -> None:
    assert choose(known) is plan


def test_a_fallback_is_the_same_choice_made_again_with_the_new_fact() -> None:
    # Given an object copied part for part
    known = Known(LARGE, md5_known=False, verify_md5=False, source_part_size=16 * MiB)
    assert choose(known) is Plan.PART_FOR_PART

    # When its parts did not add up (the pair is known unaligned: no source part size offered any more)
    assert choose(Known(LARGE, md5_known=False, verify_md5=False)) is Plan.PARTS_FROM_RANGES

    # When the destination then turned out to give part ETags that are not MD5s
    assert choose(Known(LARGE, md5_known=False, verify_md5=False, part_etags_md5=False)) is (
        Plan.WHOLE_PARTS_FROM_RANGES
    )


def test_a_copy_carrying_object_lock_sends_every_part_whole_with_its_content_md5() -> None:
    # Given objects that would go in streamed parts (from ranges, or part for part)
    for part_size in (None, 16 * MiB):
        known = Known(LARGE, md5_known=False, verify_md5=False, source_part_size=part_size, parts_need_md5=True)

        # When the copy carries Object Lock (AWS refuses an UploadPart of it without Content-MD5)
        # Then its parts are held whole and sent with their Content-MD5
        assert choose(known) is Plan.WHOLE_PARTS_FROM_RANGES


def test_only_the_ranged_plans_read_by_ranges_and_only_in_order_plans_read_the_body() -> None:
    assert {p for p in Plan if p.ranged} == {Plan.PARTS_FROM_RANGES, Plan.WHOLE_PARTS_FROM_RANGES, Plan.PART_FOR_PART}
    assert {p for p in Plan if p.reads_body} == {Plan.PUT_BUFFERED, Plan.PUT_PROVEN, Plan.PUT_STREAMED,
                                                   Plan.PARTS_IN_ORDER}
