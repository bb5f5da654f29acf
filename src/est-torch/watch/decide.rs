//! What watch mode does about a batch of file changes: a pure function of the changed paths,
//! the file as it now compiles, what is running and what the model folders hold. The loop in
//! `watch` gathers those facts and carries the decision out, in a fixed order: print, stop the
//! run, evaluate, show the guard's report, take the new plan, move, start.

use camino::{Utf8Path, Utf8PathBuf};
use est::cli::args::OnIncompatible;
use est::cli::guard;
use est::plan::Plan;
use est::watch::classify::{classify, Verdict};
use est::{Compiled, Source};

use crate::train::Start;

/// The file as a save left it: compiled, or its rendered errors.
pub type Reloaded = Result<(Compiled, Source), String>;

/// What the model folders hold, asked only while deciding.
pub trait Folders {
    /// Whether `dir`'s latest checkpoint was made by `plan`'s model and optimizer (an empty or
    /// missing folder fits any plan).
    fn fits(&self, dir: &Utf8Path, plan: &Plan) -> bool;
    /// Whether `dir` holds a checkpoint.
    fn holds_checkpoints(&self, dir: &Utf8Path) -> bool;
}

/// Where the session stands when a batch of changes arrives.
pub struct Situation<'a> {
    /// The `.est` file, absolute, as file events name it.
    pub file: &'a Utf8Path,
    /// The file as the user typed it, for messages.
    pub shown: &'a str,
    /// The plan the session trains, once the file has compiled.
    pub current: Option<&'a Plan>,
    /// Where the current model trains.
    pub model_dir: Option<&'a Utf8Path>,
    /// `--model-dir`, which replaces every plan's own.
    pub flag_dir: Option<&'a Utf8Path>,
    /// `--on-incompatible`.
    pub on_incompatible: OnIncompatible,
    /// Whether a run is in progress.
    pub running: bool,
    /// Whether training waits for an edit.
    pub idle: bool,
}

/// What to do, in the order the fields are listed.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    /// The file's errors, rendered, to print first.
    pub errors: Option<String>,
    /// Lines to say.
    pub say: Vec<String>,
    /// What to remember as the last change, for status lines.
    pub last_change: Option<String>,
    /// Stop the run in progress at its next step (it writes a checkpoint) and show its status.
    pub stop: bool,
    /// Evaluate the latest checkpoint on these data files.
    pub evaluate: Vec<Utf8PathBuf>,
    /// Show the guard's report of the model change, with what happens next.
    pub report: Option<String>,
    /// Train the new plan from now on.
    pub adopt: bool,
    /// Train in this model_dir from now on.
    pub model_dir: Option<Utf8PathBuf>,
    /// Whether training waits for an edit afterwards, when that changes.
    pub idle: Option<bool>,
    /// Start a run, and how it treats the folder's checkpoints.
    pub start: Option<Start>,
}

/// `<model_dir>-<model fingerprint><optimizer fingerprint prefix>`: a folder per model.
pub fn sibling(dir: &Utf8Path, plan: &Plan) -> Utf8PathBuf {
    let name = dir.file_name().unwrap_or("model");
    let fp = &plan.fingerprint;
    dir.with_file_name(format!("{name}-{}{}", fp.model, &fp.optimizer[..8.min(fp.optimizer.len())]))
}

/// The folder a plan trains in: its home (`--model-dir` or the plan's), unless that holds
/// another model's checkpoints, then the sibling named after the plan's fingerprints.
pub fn place(plan: &Plan, flag_dir: Option<&Utf8Path>, folders: &dyn Folders) -> Utf8PathBuf {
    let home = flag_dir.map_or_else(|| plan.checkpoint.model_dir.clone(), Utf8Path::to_owned);
    if folders.fits(&home, plan) {
        home
    } else {
        sibling(&home, plan)
    }
}

/// What to do about `changed`; `new` is the file recompiled when it is among them.
pub fn decide(s: &Situation, changed: &[Utf8PathBuf], new: Option<&Reloaded>, folders: &dyn Folders) -> Decision {
    let Some(current) = s.current else { return first_plan(s, new, folders) };
    let compiled = match new {
        Some(Ok((c, source))) => Some((c, source.text.as_str())),
        _ => None,
    };
    match classify(changed, s.file, current, compiled) {
        Verdict::Unchanged => Decision {
            say: new.map(|_| format!("`{}` saved, nothing that matters changed", s.shown)).into_iter().collect(),
            ..Decision::default()
        },
        Verdict::Invalid => {
            let state = if s.running { "the current run goes on" } else { "training waits" };
            Decision {
                errors: new.and_then(|n| n.as_ref().err().cloned()),
                say: vec![format!("`{}` has errors; {state} until a save fixes them", s.shown)],
                ..Decision::default()
            }
        }
        Verdict::Training(d) => {
            let change = d.training_summary();
            Decision {
                say: vec![format!(
                    "`{}` changed: {change}; continuing from a checkpoint with the new settings",
                    s.shown
                )],
                last_change: Some(change),
                stop: true,
                adopt: true,
                start: Some(Start::Resume),
                ..Decision::default()
            }
        }
        Verdict::Incompatible(d) => match compiled {
            Some((c, _)) => {
                incompatible(s, &c.plan, d.model.iter().chain(&d.optimizer).map(|c| c.key.as_str()), folders)
            }
            None => Decision::default(),
        },
        Verdict::Data(paths) => {
            let names: Vec<String> = paths.iter().map(|p| guard::display(p)).collect();
            let evaluate =
                paths.iter().filter(|p| !current.data.predict.as_ref().is_some_and(|f| f.names(p))).cloned().collect();
            Decision {
                say: vec![format!("{} changed", names.join(", "))],
                last_change: Some(format!("{} edited", names.join(", "))),
                stop: true,
                evaluate,
                start: (s.running || !s.idle).then_some(Start::Resume),
                ..Decision::default()
            }
        }
    }
}

/// Before the file has ever compiled, only a save that fixes it matters.
fn first_plan(s: &Situation, new: Option<&Reloaded>, folders: &dyn Folders) -> Decision {
    match new {
        Some(Ok((compiled, _))) => Decision {
            say: vec![format!("`{}` checks now", s.shown)],
            adopt: true,
            model_dir: Some(place(&compiled.plan, s.flag_dir, folders)),
            start: Some(Start::Resume),
            ..Decision::default()
        },
        Some(Err(rendered)) => Decision { errors: Some(rendered.clone()), ..Decision::default() },
        None => Decision::default(),
    }
}

/// An edit of the model or the optimizer: the checkpoints in the current folder no longer fit.
fn incompatible<'k>(
    s: &Situation,
    plan: &Plan,
    keys: impl Iterator<Item = &'k str>,
    folders: &dyn Folders,
) -> Decision {
    let Some(old_dir) = s.model_dir else { return Decision::default() };
    // Back to a model the home folder holds (an edit undone): resume it there.
    let target = place(plan, s.flag_dir, folders);
    let resumes = folders.holds_checkpoints(&target);
    let (new, old) = (guard::display(&target), guard::display(old_dir));
    let action = match (s.on_incompatible, resumes) {
        (OnIncompatible::Stop, _) => "training stops until the next edit".to_string(),
        (_, true) => format!("resuming the matching checkpoints in {new}"),
        (OnIncompatible::Fresh, false) => format!("training a fresh model in {new}; {old} stays as it is"),
        (OnIncompatible::WarmStart, false) => {
            format!(
                "training in {new}, warm-started from {old} where names and shapes still match; {old} stays as it is"
            )
        }
    };
    let decision = Decision {
        last_change: Some(keys.collect::<Vec<_>>().join(", ") + " changed"),
        stop: true,
        report: Some(action),
        adopt: true,
        ..Decision::default()
    };
    if s.on_incompatible == OnIncompatible::Stop {
        return Decision { idle: Some(true), ..decision };
    }
    let how = if resumes || s.on_incompatible == OnIncompatible::Fresh {
        Start::Resume
    } else {
        Start::WarmStartFrom(old_dir.to_owned())
    };
    Decision { model_dir: Some(target), start: Some(how), ..decision }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The repository root, two folders above this crate's.
    fn root() -> Utf8PathBuf {
        est::check::resolve(Utf8Path::new(env!("CARGO_MANIFEST_DIR")), "../..")
    }

    fn iris() -> String {
        std::fs::read_to_string(root().join("pipelines/iris.est")).unwrap_or_else(|e| panic!("pipelines/iris.est: {e}"))
    }

    fn reload(text: &str) -> Reloaded {
        let source = Source { path: root().join("pipelines/iris.est"), text: text.to_string() };
        match est::compile(&source, &root().join("pipelines")) {
            Ok(compiled) => Ok((compiled, source)),
            Err(d) => Err(est::render::render(&d, "iris.est", text, false)),
        }
    }

    /// The plan of `text`, or the test fails with its rendered errors.
    fn plan(text: &str) -> Plan {
        reload(text).unwrap_or_else(|rendered| panic!("{rendered}")).0.plan
    }

    /// Folders as a test says they are: which hold another model, which hold checkpoints.
    #[derive(Default)]
    struct Fake {
        foreign: BTreeSet<Utf8PathBuf>,
        full: BTreeSet<Utf8PathBuf>,
    }

    impl Folders for Fake {
        fn fits(&self, dir: &Utf8Path, _: &Plan) -> bool {
            !self.foreign.contains(dir)
        }
        fn holds_checkpoints(&self, dir: &Utf8Path) -> bool {
            self.full.contains(dir)
        }
    }

    struct Case {
        plan: Plan,
        file: Utf8PathBuf,
        home: Utf8PathBuf,
    }

    impl Case {
        fn new() -> Case {
            let plan = plan(&iris());
            Case { file: plan.source.clone(), home: plan.checkpoint.model_dir.clone(), plan }
        }

        fn situation(&self, on_incompatible: OnIncompatible, running: bool) -> Situation<'_> {
            Situation {
                file: &self.file,
                shown: "iris.est",
                current: Some(&self.plan),
                model_dir: Some(&self.home),
                flag_dir: None,
                on_incompatible,
                running,
                idle: !running,
            }
        }

        fn edit(&self, s: &Situation, old: &str, new: &str, folders: &Fake) -> Decision {
            let text = iris();
            assert!(text.contains(old), "{old}");
            let reloaded = reload(&text.replace(old, new));
            decide(s, std::slice::from_ref(&self.file), Some(&reloaded), folders)
        }
    }

    #[test]
    fn a_training_edit_restarts_from_a_checkpoint_with_the_new_plan() {
        let case = Case::new();
        let d = case.edit(
            &case.situation(OnIncompatible::Fresh, true),
            "learning_rate = 0.05",
            "learning_rate = 0.1",
            &Fake::default(),
        );
        assert_eq!(
            d,
            Decision {
                say: vec!["`iris.est` changed: optimizer.learning_rate 0.05 → 0.1; continuing from a checkpoint with the new settings".into()],
                last_change: Some("optimizer.learning_rate 0.05 → 0.1".into()),
                stop: true,
                adopt: true,
                start: Some(Start::Resume),
                ..Decision::default()
            }
        );
    }

    #[test]
    fn a_model_edit_moves_to_a_fresh_sibling_and_leaves_the_old_folder() {
        let case = Case::new();
        let text = iris().replace("[10, 10]", "[20, 20]");
        let new_plan = plan(&text);
        let sibling = sibling(&case.home, &new_plan);
        // The home folder holds the old model, so the new one goes beside it.
        let folders = Fake { foreign: [case.home.clone()].into(), ..Fake::default() };
        let d = case.edit(&case.situation(OnIncompatible::Fresh, true), "[10, 10]", "[20, 20]", &folders);
        assert!(d.stop && d.adopt);
        assert_eq!(d.last_change.as_deref(), Some("model.hidden_units changed"));
        assert_eq!(d.model_dir.as_ref(), Some(&sibling));
        assert_eq!(d.start, Some(Start::Resume));
        let action = d.report.unwrap_or_default();
        assert!(action.starts_with("training a fresh model in ") && action.ends_with("stays as it is"), "{action}");
        let fp = &new_plan.fingerprint;
        assert_eq!(sibling, case.home.with_file_name(format!("iris-{}{}", fp.model, &fp.optimizer[..8])));
    }

    #[test]
    fn warm_start_starts_the_sibling_from_the_old_folder() {
        let case = Case::new();
        let folders = Fake { foreign: [case.home.clone()].into(), ..Fake::default() };
        let d = case.edit(&case.situation(OnIncompatible::WarmStart, true), "[10, 10]", "[20, 20]", &folders);
        assert_eq!(d.start, Some(Start::WarmStartFrom(case.home.clone())));
        assert!(d.report.unwrap_or_default().contains("warm-started from"));
    }

    #[test]
    fn stop_waits_for_the_next_edit_without_moving() {
        let case = Case::new();
        let folders = Fake { foreign: [case.home.clone()].into(), ..Fake::default() };
        let d = case.edit(&case.situation(OnIncompatible::Stop, true), "[10, 10]", "[20, 20]", &folders);
        assert_eq!(d.report.as_deref(), Some("training stops until the next edit"));
        assert!(d.stop && d.adopt);
        assert_eq!((d.idle, d.start, d.model_dir), (Some(true), None, None));
    }

    #[test]
    fn an_undone_edit_resumes_the_folder_that_fits() {
        let case = Case::new();
        // Training moved to a sibling; the edit back finds the home folder fitting and full.
        let text = iris().replace("[10, 10]", "[20, 20]");
        let moved = plan(&text);
        let sibling_dir = sibling(&case.home, &moved);
        let folders = Fake { full: [case.home.clone()].into(), ..Fake::default() };
        let s = Situation {
            current: Some(&moved),
            model_dir: Some(&sibling_dir),
            ..case.situation(OnIncompatible::WarmStart, true)
        };
        let reloaded = reload(&iris());
        let d = decide(&s, std::slice::from_ref(&case.file), Some(&reloaded), &folders);
        assert_eq!(d.model_dir.as_ref(), Some(&case.home));
        assert_eq!(d.start, Some(Start::Resume), "a folder with checkpoints resumes, even under warm-start");
        assert!(d.report.unwrap_or_default().starts_with("resuming the matching checkpoints in "));
    }

    #[test]
    fn errors_are_shown_and_the_run_goes_on() {
        let case = Case::new();
        for running in [true, false] {
            let d = case.edit(
                &case.situation(OnIncompatible::Fresh, running),
                "hidden_units",
                "hiden_units",
                &Fake::default(),
            );
            assert!(d.errors.unwrap_or_default().contains("unknown key `hiden_units`"));
            let state = if running { "the current run goes on" } else { "training waits" };
            assert_eq!(d.say, vec![format!("`iris.est` has errors; {state} until a save fixes them")]);
            assert!(!d.stop && !d.adopt && d.start.is_none());
        }
    }

    #[test]
    fn a_save_that_changes_nothing_is_only_said() {
        let case = Case::new();
        let d =
            case.edit(&case.situation(OnIncompatible::Fresh, true), "# The seed", "# Still the seed", &Fake::default());
        assert_eq!(
            d,
            Decision { say: vec!["`iris.est` saved, nothing that matters changed".into()], ..Decision::default() }
        );
        // A change to a file the plan does not read is not even said.
        let s = case.situation(OnIncompatible::Fresh, true);
        assert_eq!(
            decide(&s, &[Utf8PathBuf::from("/elsewhere/notes.txt")], None, &Fake::default()),
            Decision::default()
        );
    }

    #[test]
    fn a_data_edit_evaluates_and_restarts_only_what_was_running() {
        let case = Case::new();
        let eval = case.plan.data.eval.clone().unwrap().entries()[0].clone();
        for (running, idle, restarts) in [(true, false, true), (false, true, false), (false, false, true)] {
            let s = Situation { idle, ..case.situation(OnIncompatible::Fresh, running) };
            let d = decide(&s, std::slice::from_ref(&eval), None, &Fake::default());
            assert!(d.stop);
            assert_eq!(d.evaluate, vec![eval.clone()]);
            assert_eq!(d.start.is_some(), restarts, "running {running}, idle {idle}");
            assert!(d.last_change.unwrap_or_default().ends_with(" edited"));
        }
    }

    #[test]
    fn a_file_that_never_compiled_starts_once_it_does() {
        let case = Case::new();
        let s = Situation { current: None, model_dir: None, ..case.situation(OnIncompatible::Fresh, false) };
        let broken = reload(&iris().replace("hidden_units", "hiden_units"));
        let d = decide(&s, std::slice::from_ref(&case.file), Some(&broken), &Fake::default());
        assert!(d.errors.is_some() && d.start.is_none());
        let fixed = reload(&iris());
        let d = decide(&s, std::slice::from_ref(&case.file), Some(&fixed), &Fake::default());
        assert_eq!(d.say, vec!["`iris.est` checks now".to_string()]);
        assert_eq!((d.adopt, d.model_dir.as_ref(), d.start), (true, Some(&case.home), Some(Start::Resume)));
        // Its home holding another model, it trains beside it.
        let folders = Fake { foreign: [case.home.clone()].into(), ..Fake::default() };
        let d = decide(&s, std::slice::from_ref(&case.file), Some(&fixed), &folders);
        assert_eq!(d.model_dir, Some(sibling(&case.home, &case.plan)));
    }
}
