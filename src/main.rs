use clap::Parser;

fn main() {
    let cli = match localci::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                localci::exit::Outcome::Invalid.code()
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    std::process::exit(localci::cli::run(cli).code());
}
