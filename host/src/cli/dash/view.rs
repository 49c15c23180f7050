//! What the dashboard shows and how keys change it: pure state and drawing, so it is tested on
//! ratatui's `TestBackend` against a snapshot. The loop that feeds it is in `super`.

use ratatui::Frame;
use ratatui::crossterm::event::KeyCode;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState, Tabs, Wrap};

use crate::slurm::views::QueueRow;
use crate::types::status::JobStatus;
use crate::types::text::bounded;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Queue,
    Mine,
}

/// What a key asks the loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    Refresh,
    ShowLog(String),
    Cancel(String),
}

/// Everything on the screen.
#[derive(Debug, Clone)]
pub struct App {
    pub cluster: String,
    pub tab: Tab,
    pub queue: Vec<QueueRow>,
    pub mine: Vec<JobStatus>,
    pub selected: usize,
    /// The job whose log tail is shown, and the tail.
    pub log: Option<(String, String)>,
    /// A job waiting for the user to confirm its cancellation.
    pub confirm: Option<String>,
    /// The last thing that happened (an error, a cancellation).
    pub message: String,
    /// When the data was last refreshed (`HH:MM:SS UTC`).
    pub updated: String,
}

const HELP: &str = "q quit · tab switch · ↑↓ select · l log · c cancel · r refresh";

impl App {
    pub fn new(cluster: &str) -> App {
        App {
            cluster: cluster.to_string(),
            tab: Tab::Queue,
            queue: Vec::new(),
            mine: Vec::new(),
            selected: 0,
            log: None,
            confirm: None,
            message: String::new(),
            updated: "never".into(),
        }
    }

    fn rows(&self) -> usize {
        match self.tab {
            Tab::Queue => self.queue.len(),
            Tab::Mine => self.mine.len(),
        }
    }

    /// The job id of the selected row.
    pub fn selected_job(&self) -> Option<String> {
        match self.tab {
            Tab::Queue => self.queue.get(self.selected).map(|r| r.job_id.clone()),
            Tab::Mine => self.mine.get(self.selected).map(|s| s.job_id.to_string()),
        }
    }

    /// Keep the selection on a row after the data changed.
    pub fn clamp(&mut self) {
        self.selected = self.selected.min(self.rows().saturating_sub(1));
    }

    pub fn on_key(&mut self, key: KeyCode, ctrl: bool) -> Action {
        if let Some(job) = self.confirm.take() {
            return match key {
                KeyCode::Char('y') | KeyCode::Char('Y') => Action::Cancel(job),
                _ => {
                    self.message = format!("job {job} not cancelled");
                    Action::None
                }
            };
        }
        match key {
            KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
            KeyCode::Char('c') if ctrl => Action::Quit,
            KeyCode::Tab | KeyCode::BackTab => {
                self.tab = match self.tab {
                    Tab::Queue => Tab::Mine,
                    Tab::Mine => Tab::Queue,
                };
                self.selected = 0;
                Action::None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(self.rows().saturating_sub(1));
                Action::None
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                Action::None
            }
            KeyCode::Char('r') => Action::Refresh,
            KeyCode::Char('l') | KeyCode::Enter => {
                self.selected_job().map_or(Action::None, Action::ShowLog)
            }
            KeyCode::Char('c') => {
                self.confirm = self.selected_job();
                Action::None
            }
            _ => Action::None,
        }
    }
}

pub fn draw(frame: &mut Frame, app: &App) {
    let log_height = if app.log.is_some() { 10 } else { 0 };
    let [title, tabs, table, log, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(log_height),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(
        Paragraph::new(format!(
            "slurmkit dash · {} · updated {}",
            app.cluster, app.updated
        ))
        .style(Style::new().add_modifier(Modifier::BOLD)),
        title,
    );
    let selected_tab = match app.tab {
        Tab::Queue => 0,
        Tab::Mine => 1,
    };
    frame.render_widget(
        Tabs::new(vec![
            format!("Queue ({})", app.queue.len()),
            format!("My jobs ({})", app.mine.len()),
        ])
        .select(selected_tab),
        tabs,
    );
    let (header, rows, widths) = match app.tab {
        Tab::Queue => (
            Row::new([
                "JOB ID",
                "USER",
                "PARTITION",
                "STATE",
                "TIME",
                "NAME",
                "NODELIST(REASON)",
            ]),
            app.queue
                .iter()
                .map(|r| {
                    Row::new([
                        r.job_id.clone(),
                        r.user.clone(),
                        r.partition.clone(),
                        r.state.clone(),
                        r.time_used.clone(),
                        bounded(&r.name, 40),
                        bounded(&r.nodelist_or_reason, 40),
                    ])
                })
                .collect::<Vec<_>>(),
            vec![
                Constraint::Length(12),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(11),
                Constraint::Length(10),
                Constraint::Min(10),
                Constraint::Min(10),
            ],
        ),
        Tab::Mine => (
            Row::new(["JOB ID", "STATE", "EXIT", "REASON"]),
            app.mine
                .iter()
                .map(|s| {
                    Row::new([
                        s.job_id.to_string(),
                        s.state.to_string(),
                        s.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                        bounded(s.reason.as_deref().unwrap_or(""), 60),
                    ])
                })
                .collect(),
            vec![
                Constraint::Length(14),
                Constraint::Length(14),
                Constraint::Length(5),
                Constraint::Min(10),
            ],
        ),
    };
    let mut state = TableState::default().with_selected(Some(app.selected));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(header.style(Style::new().add_modifier(Modifier::BOLD)))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .highlight_symbol("> ")
            .block(Block::new().borders(Borders::TOP)),
        table,
        &mut state,
    );
    if let Some((job, tail)) = &app.log {
        frame.render_widget(
            Paragraph::new(bounded_lines(tail, log_height.saturating_sub(2) as usize))
                .block(Block::bordered().title(format!(" log of {job} ")))
                .wrap(Wrap { trim: false }),
            log,
        );
    }
    let footer_text = if app.message.is_empty() {
        HELP.to_string()
    } else {
        format!("{} · {HELP}", bounded(&app.message, 120))
    };
    frame.render_widget(Paragraph::new(footer_text), footer);
    if let Some(job) = &app.confirm {
        let area = centered(frame.area(), 40, 3);
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(format!("Cancel job {job}? y/n")).block(Block::bordered()),
            area,
        );
    }
}

/// The last `lines` lines of `text`, with control characters shown rather than obeyed.
fn bounded_lines(text: &str, lines: usize) -> Vec<Line<'static>> {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| Line::from(bounded(l, 400)))
        .collect()
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::names::JobId;
    use crate::types::status::{JobState, StatusSource};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn sample() -> App {
        let mut app = App::new("ssh://alice@login.example.org:22");
        app.updated = "12:00:00 UTC".into();
        let row = |id: &str, state: &str, where_: &str| QueueRow {
            job_id: id.into(),
            user: "alice".into(),
            partition: "gpu".into(),
            state: state.into(),
            time_used: "1:02".into(),
            time_limit: "1:00:00".into(),
            nodes: 1,
            cpus: 8,
            nodelist_or_reason: where_.into(),
            name: "train\x1b[31m".into(),
        };
        app.queue = vec![
            row("4242", "RUNNING", "g01"),
            row("4243", "PENDING", "(Priority)"),
        ];
        let mut done = JobStatus::new(
            JobId::parse("4200").unwrap(),
            JobState::Failed,
            StatusSource::Sacct,
        );
        done.exit_code = Some(3);
        done.reason = Some("NonZeroExitCode".into());
        app.mine = vec![done];
        app
    }

    fn screen(app: &App) -> String {
        let mut terminal = Terminal::new(TestBackend::new(90, 18)).unwrap();
        terminal.draw(|frame| draw(frame, app)).unwrap();
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            let line: String = (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect();
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    fn check(name: &str, text: &str) {
        crate::cli::snapshot::check("src/cli/dash/snapshots", name, text);
    }

    #[test]
    fn the_queue_my_jobs_a_log_and_a_confirmation_are_drawn() {
        let mut app = sample();
        check("queue", &screen(&app));
        assert_eq!(app.on_key(KeyCode::Down, false), Action::None);
        assert_eq!(app.selected_job().as_deref(), Some("4243"));
        assert_eq!(
            app.on_key(KeyCode::Char('l'), false),
            Action::ShowLog("4243".into())
        );
        app.log = Some((
            "4243".into(),
            "epoch 1\nepoch 2\n\x1b]0;evil\x07done\n".into(),
        ));
        app.on_key(KeyCode::Char('c'), false);
        check("log-and-confirm", &screen(&app));
        assert_eq!(
            app.on_key(KeyCode::Char('y'), false),
            Action::Cancel("4243".into())
        );
        app.on_key(KeyCode::Tab, false);
        app.log = None;
        check("mine", &screen(&app));
        assert_eq!(app.on_key(KeyCode::Char('c'), true), Action::Quit);
    }

    #[test]
    fn anything_but_y_keeps_the_job() {
        let mut app = sample();
        app.on_key(KeyCode::Char('c'), false);
        assert_eq!(app.on_key(KeyCode::Char('n'), false), Action::None);
        assert_eq!(app.message, "job 4242 not cancelled");
        assert!(app.confirm.is_none());
    }
}
