"""A message deleted in Discord: which jobs' videos it was (`Repository.jobs_of_result_messages`)."""

from storage import Repository


async def test_the_jobs_of_deleted_messages_are_those_whose_video_they_carried(repo: Repository, make_job) -> None:
    jobs = [await make_job() for _ in range(3)]
    for job, message_id in zip(jobs[:2], (1_234_567_890_123_456_789, 1_234_567_890_123_456_790), strict=True):
        await repo.mark_running(job.id)
        await repo.mark_done(job.id, seed=1, gpu_s=1.0, output_bytes=10)
        await repo.set_result_message(job.id, message_id)
    await repo.set_status_message(jobs[2].id, 1_234_567_890_123_456_791)  # a status is no video

    found = await repo.jobs_of_result_messages([1_234_567_890_123_456_790, 1_234_567_890_123_456_791, 5,
                                                1_234_567_890_123_456_789])

    assert [(job.id, job.result_message_id) for job in found] == [(1, 1_234_567_890_123_456_789),
                                                                  (2, 1_234_567_890_123_456_790)]
    assert await repo.jobs_of_result_messages([]) == [] and await repo.jobs_of_result_messages([5]) == []
