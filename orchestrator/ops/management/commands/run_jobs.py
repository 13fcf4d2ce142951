import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orchestrator.celery import app
from orchestrator.ops.scheduler import InProcessScheduler


class Command(BaseCommand):
    help = (
        "Run the periodic jobs of CELERY_BEAT_SCHEDULE in this process, without a broker "
        "(the embedded default; `make run` starts it). Production uses celery beat and workers instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run every job once, then exit.")

    def handle(self, *args, once, **options):
        app.loader.import_default_modules()
        scheduler = InProcessScheduler(app=app, schedule=settings.CELERY_BEAT_SCHEDULE)
        if once:
            failed = []
            for name in scheduler.schedule:
                result = scheduler.run_job(name)
                outcome = "not installed" if result is None else ("failed" if result.failed() else result.result)
                self.stdout.write(f"{name}: {outcome}")
                if outcome in ("failed", "not installed"):
                    failed.append(name)
            if failed:
                # Non-zero, as each job's own command exits: a cron or a script using --once must see it.
                raise CommandError(f"{len(failed)} of {len(scheduler.schedule)} jobs did not run: {', '.join(failed)}")
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        jobs = ", ".join(f"{name} every {entry['schedule']}s" for name, entry in scheduler.schedule.items())
        self.stdout.write(f"Running periodic jobs in-process: {jobs}")
        scheduler.run_forever(stop)
